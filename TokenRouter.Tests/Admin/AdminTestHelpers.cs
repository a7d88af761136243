using System.Globalization;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Npgsql;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Admin;

internal static class AdminTestHelpers
{
    // The wire format of the Redis contract, spelled out independently of RedisContract (which both referenced
    // assemblies define, so tests could not name it unambiguously anyway): a test that re-derives it catches drift.
    public const string KeyHashPrefix = "tokenrouter:key:";
    public const string KeysChangedChannel = "tokenrouter:keys:changed";
    public const string UsageStream = "tokenrouter:usage";
    public const string UsageGroup = "tokenrouter-admin";
    public const string PricesHash = "tokenrouter:prices";
    public const string PricesChangedChannel = "tokenrouter:prices:changed";

    public static string QuotaKey(Guid keyId) => $"tokenrouter:quota:{{{keyId:D}}}";

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
    public static Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        Eventually.TrueAsync(condition, what, timeout);

    public static async Task<HttpResponseMessage> PatchJsonAsync(this HttpClient client, string path, string json) =>
        await client.PatchAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    /// <summary>A complete usage stream entry as the gateway writes it; <paramref name="overrides"/> replace or add fields (null removes one).</summary>
    public static NameValueEntry[] UsageEntry(string requestId, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var fields = new Dictionary<string, string?>
        {
            ["request_id"] = requestId,
            ["key_id"] = "static-0123456789ab",
            ["model"] = "gpt-4o",
            ["provider"] = "openai",
            ["prompt_tokens"] = "1000",
            ["cached_read_tokens"] = "0",
            ["cache_write_5m_tokens"] = "0",
            ["cache_write_1h_tokens"] = "0",
            ["completion_tokens"] = "10",
            ["cost_usd"] = "0.0026",
            ["cache_savings_usd"] = "0",
            ["dedup_savings_usd"] = "0",
            ["unpriced"] = "0",
            ["deduplicated"] = "0",
            ["stream"] = "0",
            ["status"] = "200",
            ["latency_ms"] = "42",
            ["ts"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
        };
        foreach (var (name, value) in overrides ?? new Dictionary<string, string?>())
        {
            fields[name] = value;
        }
        return fields.Where(f => f.Value is not null).Select(f => new NameValueEntry(f.Key, f.Value)).ToArray();
    }

    public static async Task<long> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    public static async Task ExecuteAsync(string connectionString, string sql, params (string Name, object? Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Inserts a ledger row directly (as the consumer would have): for report and seeding tests that need exact,
    /// known rows without going through the stream.
    /// </summary>
    public static Task InsertUsageAsync(string connectionString, string requestId, Guid? keyId, decimal? costUsd,
        string model = "gpt-4o", string provider = "openai", DateTimeOffset? createdAt = null, int prompt = 100,
        int cachedRead = 0, int write5m = 0, int write1h = 0, int completion = 10, decimal cacheSavings = 0,
        decimal dedupSavings = 0, bool deduplicated = false, bool estimated = false) =>
        ExecuteAsync(connectionString, """
            INSERT INTO usage_records (request_id, api_key_id, model, provider, prompt_tokens, cached_read_tokens,
                cache_write5m_tokens, cache_write1h_tokens, completion_tokens, cost_usd, cache_savings_usd,
                dedup_savings_usd, unpriced, deduplicated, stream, estimated, status, latency_ms, created_at)
            VALUES (@id, @key, @model, @provider, @prompt, @cached, @w5, @w1, @completion, @cost, @cache_savings,
                @dedup_savings, @unpriced, @dedup, false, @estimated, 200, 5, @at)
            """,
            ("id", requestId), ("key", keyId), ("model", model), ("provider", provider), ("prompt", prompt),
            ("cached", cachedRead), ("w5", write5m), ("w1", write1h), ("completion", completion), ("cost", costUsd),
            ("cache_savings", cacheSavings), ("dedup_savings", dedupSavings), ("unpriced", costUsd is null),
            ("dedup", deduplicated), ("estimated", estimated), ("at", (createdAt ?? DateTimeOffset.UtcNow).UtcDateTime));

    /// <summary>The consumer group's lag and pending count (XINFO GROUPS); (null, null) while there is no group.</summary>
    public static async Task<(long? Lag, long Pending)> GroupStateAsync(IDatabase db)
    {
        if (!await db.KeyExistsAsync(UsageStream))
        {
            return (null, 0);
        }
        var group = (await db.StreamGroupInfoAsync(UsageStream)).FirstOrDefault(g => g.Name == UsageGroup);
        return group.Name is null ? (null, 0) : (group.Lag, group.PendingMessageCount);
    }

    /// <summary>Waits until the group has been delivered everything and acknowledged it all.</summary>
    public static Task WaitUntilDrainedAsync(IDatabase db, TimeSpan? timeout = null) =>
        EventuallyAsync(async () => await GroupStateAsync(db) is { Lag: 0, Pending: 0 },
            timeout ?? TimeSpan.FromSeconds(30), "the usage stream to be drained (lag 0, nothing pending)");
}
