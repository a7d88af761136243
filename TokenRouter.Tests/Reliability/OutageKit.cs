using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Npgsql;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Reliability;

/// <summary>What the reliability tests share: gateway settings for a Redis that will go away, and what a client saw.</summary>
internal static class OutageKit
{
    public const string ChatBody = """{"model":"gpt-4o","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}""";
    public const string MessagesBody = """{"model":"claude-sonnet-4-5","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}""";

    /// <summary>No abort on a failed connect; timeouts that survive a busy CI machine (outages are seen as disconnects).</summary>
    public static string Tolerant(string redisConnectionString) =>
        $"{redisConnectionString},abortConnect=false,connectTimeout=2000,asyncTimeout=5000,syncTimeout=5000";

    public static Dictionary<string, string?> GatewaySettings(FakeProvider provider, RedisServer redis, string policy)
    {
        var settings = GatewayFactory.ProvidersAt(provider);
        settings["ConnectionStrings:redis"] = Tolerant(redis.ConnectionString);
        settings["REDIS_OUTAGE_POLICY"] = policy;
        settings["RedisOutage:ProbeInterval"] = "00:00:00.500";
        // Every request looks its key up in Redis: during the outage, known keys can only come from the local cache.
        settings["Gateway:AuthCacheTtl"] = "00:00:00";
        return settings;
    }

    public static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    public static Task<HttpResponseMessage> ChatAsync(HttpClient client, string body = ChatBody) =>
        client.PostAsync("v1/chat/completions", Json(body));

    /// <summary>One served request as the client saw it: the gateway's request id and the cost it reported.</summary>
    public sealed record Served(string RequestId, decimal CostUsd);

    public static Served ServedFrom(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return new Served(Header(response, "x-request-id"),
            decimal.Parse(Header(response, "x-tokenrouter-cost-usd"), CultureInfo.InvariantCulture));
    }

    public static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.First() : throw new Xunit.Sdk.XunitException($"no {name} header");

    /// <summary>A polite refusal: 503, a Retry-After, and the error in OpenAI's shape with the given code.</summary>
    public static async Task AssertOpenAI503Async(HttpResponseMessage response, string code)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.True(response.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 }, "Retry-After missing");
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = body.RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
    }

    /// <summary>The same refusal in Anthropic's shape: <c>{"type":"error","error":{"type","message"}}</c>.</summary>
    public static async Task AssertAnthropic503Async(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.True(response.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 }, "Retry-After missing");
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("error", body.RootElement.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("error").GetProperty("message").GetString()));
    }

    /// <summary>Request id → cost of every usage entry in the Redis stream (a duplicate fails the test).</summary>
    public static async Task<Dictionary<string, decimal>> UsageStreamAsync(IDatabase db)
    {
        var entries = await db.StreamRangeAsync("tokenrouter:usage");
        var usage = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            var id = entry["request_id"].ToString();
            Assert.True(usage.TryAdd(id, decimal.Parse(entry["cost_usd"].ToString(), CultureInfo.InvariantCulture)),
                $"usage of {id} appears twice in the stream");
        }
        return usage;
    }

    /// <summary>Request id → cost of every row of Admin's ledger.</summary>
    public static async Task<Dictionary<string, decimal>> LedgerAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT request_id, cost_usd FROM usage_records", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new Dictionary<string, decimal>(StringComparer.Ordinal);
        while (await reader.ReadAsync()) rows.Add(reader.GetString(0), reader.GetDecimal(1));
        return rows;
    }

    /// <summary>The served requests as the ledger should hold them.</summary>
    public static Dictionary<string, decimal> Expected(IEnumerable<Served> served) =>
        served.ToDictionary(s => s.RequestId, s => s.CostUsd, StringComparer.Ordinal);

    public static void AssertSameRequests(IReadOnlyDictionary<string, decimal> expected, IReadOnlyDictionary<string, decimal> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (id, cost) in expected) Assert.Equal(cost, actual[id]);
    }

    public static AuthenticationHeaderValue Bearer(string key) => new("Bearer", key);
}
