using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Accounting;

/// <summary>
/// The usage stream writer against a Redis server of this class's own (the stream name is global, and one test
/// takes the server away and back).
/// </summary>
public sealed class RedisUsageSinkTests : IAsyncLifetime
{
    // The contract's wire names, spelled out independently of RedisContract so drift on either side fails here.
    private const string Stream = "tokenrouter:usage";
    private static readonly string[] Fields =
    [
        "request_id", "key_id", "model", "provider", "prompt_tokens", "cached_read_tokens", "cache_write_5m_tokens",
        "cache_write_1h_tokens", "completion_tokens", "cost_usd", "cache_savings_usd", "dedup_savings_usd", "unpriced",
        "deduplicated", "stream", "status", "latency_ms", "ts", "estimated", "tags", "end_user",
    ];

    private RedisServer _server = null!;
    private ConnectionMultiplexer _redis = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.StartNewAsync();
        _redis = await ConnectionMultiplexer.ConnectAsync(
            $"{_server.ConnectionString},abortConnect=false,asyncTimeout=2000,syncTimeout=2000,connectTimeout=2000");
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        await _server.DisposeAsync();
    }

    private static UsageRecord Sample(string requestId, bool priced = true) => new()
    {
        RequestId = requestId,
        KeyId = "5f0c7f7e-0000-4000-8000-000000000001",
        Model = "claude-sonnet-4-5-20250929",
        Provider = "anthropic",
        Usage = new Usage(1200, 1000, 100, 50, 300),
        CostUsd = priced ? 0.0071225m : null,
        CacheSavingsUsd = priced ? 0.0025m : 0m,
        DedupSavingsUsd = 0.0123m,
        Unpriced = !priced,
        Deduplicated = true,
        Stream = true,
        Status = 499,
        Estimated = true,
        LatencyMs = 1234.5,
        Timestamp = DateTimeOffset.FromUnixTimeMilliseconds(1_767_225_600_123),
        Tags = priced ? "project-a,batch" : null,
        EndUser = priced ? "alice" : null,
    };

    // What most requests are: no cache, no savings, no flags, no tags.
    private static UsageRecord Plain(string requestId) => new()
    {
        RequestId = requestId,
        KeyId = "5f0c7f7e-0000-4000-8000-000000000002",
        Model = "gpt-4o-mini",
        Provider = "openai",
        Usage = new Usage(500, 0, 0, 0, 20),
        CostUsd = 0.000087m,
        Status = 200,
        LatencyMs = 310.2,
        Timestamp = DateTimeOffset.FromUnixTimeMilliseconds(1_767_225_600_456),
    };

    [Fact]
    public async Task Records_land_in_the_usage_stream_with_every_contract_field_they_fill()
    {
        var sink = new RedisUsageSink(_redis, NullLogger<RedisUsageSink>.Instance);
        await sink.StartAsync(CancellationToken.None);
        sink.Record(Sample("req_priced"));
        sink.Record(Sample("req_unpriced", priced: false));
        var entries = await WaitForEntriesAsync(2);
        await sink.StopAsync(CancellationToken.None);

        var priced = entries.Single(e => e["request_id"] == "req_priced");
        // Every field but the one at its neutral value (not unpriced): readers assume it when it is absent.
        Assert.Equal(Fields.Where(f => f != "unpriced").Order(StringComparer.Ordinal), priced.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("5f0c7f7e-0000-4000-8000-000000000001", priced["key_id"]);
        Assert.Equal("claude-sonnet-4-5-20250929", priced["model"]);
        Assert.Equal("anthropic", priced["provider"]);
        Assert.Equal("1200", priced["prompt_tokens"]);
        Assert.Equal("1000", priced["cached_read_tokens"]);
        Assert.Equal("100", priced["cache_write_5m_tokens"]);
        Assert.Equal("50", priced["cache_write_1h_tokens"]);
        Assert.Equal("300", priced["completion_tokens"]);
        Assert.Equal("0.0071225", priced["cost_usd"]);
        Assert.Equal("0.0025", priced["cache_savings_usd"]);
        Assert.Equal("0.0123", priced["dedup_savings_usd"]);
        Assert.Equal("1", priced["estimated"]);
        Assert.Equal("1", priced["deduplicated"]);
        Assert.Equal("1", priced["stream"]);
        Assert.Equal("499", priced["status"]);
        Assert.Equal("1235", priced["latency_ms"]);
        Assert.Equal("1767225600123", priced["ts"]);
        Assert.Equal("project-a,batch", priced["tags"]);
        Assert.Equal("alice", priced["end_user"]);

        var unpriced = entries.Single(e => e["request_id"] == "req_unpriced");
        Assert.Equal("1", unpriced["unpriced"]);
        Assert.DoesNotContain("cost_usd", unpriced.Keys);
        Assert.DoesNotContain("cache_savings_usd", unpriced.Keys);
        Assert.DoesNotContain("tags", unpriced.Keys);
        Assert.DoesNotContain("end_user", unpriced.Keys);
        Assert.Equal(0, sink.Backlog);
    }

    [Fact]
    public async Task A_plain_request_writes_only_the_fields_every_entry_has_and_its_cost()
    {
        var sink = new RedisUsageSink(_redis, NullLogger<RedisUsageSink>.Instance);
        await sink.StartAsync(CancellationToken.None);
        sink.Record(Plain("req_plain"));
        var entry = (await WaitForEntriesAsync(1)).Single();
        await sink.StopAsync(CancellationToken.None);

        Assert.Equal(["completion_tokens", "cost_usd", "key_id", "latency_ms", "model", "prompt_tokens", "provider", "request_id", "status", "ts"],
            entry.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Admin_reads_every_entry_back_as_the_gateway_recorded_it()
    {
        var sink = new RedisUsageSink(_redis, NullLogger<RedisUsageSink>.Instance);
        await sink.StartAsync(CancellationToken.None);
        UsageRecord[] recorded = [Sample("req_priced"), Sample("req_unpriced", priced: false), Plain("req_plain")];
        foreach (var record in recorded) sink.Record(record);
        await WaitForEntriesAsync(recorded.Length);
        await sink.StopAsync(CancellationToken.None);

        var stored = (await _redis.GetDatabase().StreamRangeAsync(Stream))
            .Select(e => TokenRouter.Admin.Ledger.UsageEntryParser.Parse(e, DateTimeOffset.UtcNow))
            .ToDictionary(p => p.Record!.RequestId);
        foreach (var r in recorded)
        {
            var a = stored[r.RequestId].Record!;
            Assert.Equal((r.KeyId, r.Model, r.Provider, r.Usage.PromptTokens, r.Usage.CachedReadTokens, r.Usage.CacheWrite5mTokens,
                    r.Usage.CacheWrite1hTokens, r.Usage.CompletionTokens),
                (a.ApiKeyId?.ToString(), a.Model, a.Provider, a.PromptTokens, a.CachedReadTokens, a.CacheWrite5mTokens,
                    a.CacheWrite1hTokens, a.CompletionTokens));
            Assert.Equal((r.CostUsd, r.CacheSavingsUsd, r.DedupSavingsUsd, r.Unpriced, r.Deduplicated, r.Stream, r.Estimated),
                (a.CostUsd, a.CacheSavingsUsd, a.DedupSavingsUsd, a.Unpriced, a.Deduplicated, a.Stream, a.Estimated));
            Assert.Equal((r.Status, (int)Math.Round(r.LatencyMs, MidpointRounding.AwayFromZero), r.Timestamp, r.Tags, r.EndUser),
                (a.Status, a.LatencyMs, a.CreatedAt, a.Tags, a.EndUser));
        }
    }

    [Fact]
    public async Task A_redis_outage_loses_no_record_and_duplicates_none()
    {
        var sink = new RedisUsageSink(_redis, NullLogger<RedisUsageSink>.Instance);
        await sink.StartAsync(CancellationToken.None);
        await _server.StopAsync();

        const int count = 700; // more than two batches
        for (var i = 0; i < count; i++) sink.Record(Sample($"req_{i:D4}"));
        Assert.Equal(count, sink.Backlog); // nothing could be written: all of it waits in memory

        await _server.StartAsync();
        var entries = await WaitForEntriesAsync(count);
        await EventuallyAsync(() => sink.Backlog == 0, "the backlog to drain");
        await sink.StopAsync(CancellationToken.None);

        Assert.Equal(count, entries.Count);
        Assert.Equal(count, await _redis.GetDatabase().StreamLengthAsync(Stream));
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"req_{i:D4}"), entries.Select(e => e["request_id"]).Order(StringComparer.Ordinal));
        Assert.Equal(0, sink.Dropped);
    }

    [Fact]
    public async Task A_batch_replayed_after_an_ambiguous_failure_is_not_appended_twice()
    {
        var sink = new RedisUsageSink(_redis, NullLogger<RedisUsageSink>.Instance);
        var args = RedisUsageSink.Arguments([Sample("req_a"), Sample("req_b")], sequence: 1);
        Assert.True(await sink.AppendOnceAsync(args));
        Assert.False(await sink.AppendOnceAsync(args)); // the same batch again, as after a timeout that did reach Redis
        Assert.True(await sink.AppendOnceAsync(RedisUsageSink.Arguments([Sample("req_c")], sequence: 2)));
        Assert.Equal(3, await _redis.GetDatabase().StreamLengthAsync(Stream));
    }

    [Fact]
    public async Task A_full_backlog_refuses_new_records_without_blocking_or_evicting_queued_ones()
    {
        var sink = new RedisUsageSink(_redis, NullLogger<RedisUsageSink>.Instance, capacity: 3);
        // Not started: nothing drains, as when Redis stays away.
        for (var i = 0; i < 5; i++) sink.Record(Sample($"req_{i}"));
        Assert.Equal(3, sink.Backlog);
        Assert.Equal(2, sink.Dropped);

        await sink.StartAsync(CancellationToken.None);
        var entries = await WaitForEntriesAsync(3);
        await sink.StopAsync(CancellationToken.None);
        Assert.Equal(["req_0", "req_1", "req_2"], entries.Select(e => e["request_id"]).Order(StringComparer.Ordinal));
    }

    private async Task<List<Dictionary<string, string>>> WaitForEntriesAsync(int count)
    {
        List<Dictionary<string, string>> entries = [];
        await EventuallyAsync(async () =>
        {
            try
            {
                var read = await _redis.GetDatabase().StreamRangeAsync(Stream);
                entries = [.. read.Select(e => e.Values.ToDictionary(v => v.Name.ToString(), v => v.Value.ToString()))];
                return entries.Count >= count;
            }
            catch (RedisException)
            {
                return false; // still reconnecting
            }
        }, $"{count} entries in the usage stream");
        return entries;
    }

    private static Task EventuallyAsync(Func<bool> condition, string what) => Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(60));

    private static Task EventuallyAsync(Func<Task<bool>> condition, string what) => Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(60));
}
