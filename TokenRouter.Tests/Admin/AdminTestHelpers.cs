using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace TokenRouter.Tests.Admin;

internal static class AdminTestHelpers
{
    // The wire format of the Redis contract, spelled out independently of RedisContract (which both referenced
    // assemblies define, so tests could not name it unambiguously anyway): a test that re-derives it catches drift.
    public const string KeyHashPrefix = "tokenrouter:key:";
    public const string KeysChangedChannel = "tokenrouter:keys:changed";

    public static string Sha256Hex(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));

    public static string RedisKeyFor(string clientKey) => KeyHashPrefix + Sha256Hex(clientKey);

    public static async Task<JsonElement> CreateKeyAsync(this HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/admin/api-keys", body);
        var text = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != System.Net.HttpStatusCode.Created)
        {
            throw new Xunit.Sdk.XunitException($"Creating a key answered {(int)response.StatusCode}: {text}");
        }
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                throw new Xunit.Sdk.XunitException($"Timed out after {timeout}: {what}");
            }
            await Task.Delay(100);
        }
    }
}
