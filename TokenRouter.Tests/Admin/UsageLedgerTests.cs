using System.Globalization;
using System.Text.Json;
using Npgsql;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;
using Xunit.Abstractions;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

/// <summary>
/// The ledger drains the gateway's usage stream into Postgres exactly once, through restarts, crashes and bad entries.
/// The class runs its own Redis server; each test takes a database index of its own and a fresh Postgres database.
/// </summary>
public sealed class UsageLedgerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(60);
    private RedisServer _redis = null!;
    private PostgresServer _postgres = null!;
    private int _nextDatabase;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _postgres = await PostgresServer.GetSharedAsync();
    }

    public async Task DisposeAsync() => await _redis.DisposeAsync();

    [Fact]
    public async Task Stream_entries_with_the_contract_fields_become_usage_rows()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_fields");
        var keyId = Guid.NewGuid();
        var ts = new DateTimeOffset(2026, 3, 1, 12, 30, 15, 250, TimeSpan.Zero);
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("req-full", new Dictionary<string, string?>
        {
            ["key_id"] = keyId.ToString("D"),
            ["model"] = "claude-sonnet-4-5",
            ["provider"] = "anthropic",
            ["prompt_tokens"] = "5000",
            ["cached_read_tokens"] = "3000",
            ["cache_write_5m_tokens"] = "1200",
            ["cache_write_1h_tokens"] = "300",
            ["completion_tokens"] = "250",
            ["cost_usd"] = "0.0123456789",
            ["cache_savings_usd"] = "0.0081",
            ["dedup_savings_usd"] = "0.5",
            ["deduplicated"] = "1",
            ["stream"] = "1",
            ["estimated"] = "1",
            ["status"] = "499",
            ["latency_ms"] = "1234",
            ["ts"] = ts.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
        }));
        // A key from configuration (not a GUID) and an unpriced model: no key id, no cost, flagged unpriced.
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("req-unpriced", new Dictionary<string, string?>
        {
            ["key_id"] = "static-abcdef012345",
            ["model"] = "mystery-model",
            ["cost_usd"] = "",
            ["unpriced"] = "1",
        }));

        await using var admin = env.StartAdmin();
        await EventuallyAsync(async () => await env.CountRowsAsync() == 2, DrainTimeout, "both entries to be stored");

        var full = await env.ReadRowAsync("req-full");
        Assert.Equal(keyId, full["api_key_id"]);
        Assert.Equal("claude-sonnet-4-5", full["model"]);
        Assert.Equal("anthropic", full["provider"]);
        Assert.Equal(5000, full["prompt_tokens"]);
        Assert.Equal(3000, full["cached_read_tokens"]);
        Assert.Equal(1200, full["cache_write5m_tokens"]);
        Assert.Equal(300, full["cache_write1h_tokens"]);
        Assert.Equal(250, full["completion_tokens"]);
        Assert.Equal(0.0123456789m, (decimal)full["cost_usd"]!);
        Assert.Equal(0.0081m, (decimal)full["cache_savings_usd"]!);
        Assert.Equal(0.5m, (decimal)full["dedup_savings_usd"]!);
        Assert.Equal(false, full["unpriced"]);
        Assert.Equal(true, full["deduplicated"]);
        Assert.Equal(true, full["stream"]);
        Assert.Equal(true, full["estimated"]);
        Assert.Equal(499, full["status"]);
        Assert.Equal(1234, full["latency_ms"]);
        Assert.Equal(ts.UtcDateTime, full["created_at"]);

        var unpriced = await env.ReadRowAsync("req-unpriced");
        Assert.Null(unpriced["api_key_id"]);
        Assert.Null(unpriced["cost_usd"]);
        Assert.Equal(true, unpriced["unpriced"]);
        Assert.Equal(false, unpriced["estimated"]); // absent field: not estimated

        await WaitUntilDrainedAsync(env.Redis);
        // Acknowledged entries are trimmed: the gateway never trims, so the ledger must.
        await EventuallyAsync(async () => await env.Redis.StreamLengthAsync(UsageStream) == 0, DrainTimeout,
            "acknowledged entries to be trimmed from the stream");
        using var client = admin.CreateAdminClient();
        var status = await client.GetJsonAsync("/admin/ledger");
        Assert.Equal(0, status.GetProperty("backlog").GetInt64());
        Assert.Equal(2, status.GetProperty("stored_since_start").GetInt64());
        Assert.Equal(0, status.GetProperty("dead_letters_total").GetInt64());
        var metrics = await client.GetStringAsync("/metrics");
        Assert.Contains("tokenrouter_ledger_backlog{", metrics);
        Assert.Contains("tokenrouter_ledger_entries_total{", metrics);
    }

    [Fact]
    public async Task Same_request_id_written_twice_is_stored_once()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_dupes");
        await using var admin = env.StartAdmin();

        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("req-twice", new Dictionary<string, string?> { ["prompt_tokens"] = "111" }));
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("req-twice", new Dictionary<string, string?> { ["prompt_tokens"] = "222" }));
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("req-other"));
        await WaitUntilDrainedAsync(env.Redis);

        Assert.Equal(2, await env.CountRowsAsync());
        Assert.Equal(111, (await env.ReadRowAsync("req-twice"))["prompt_tokens"]); // the first one wins
        using var client = admin.CreateAdminClient();
        var status = await client.GetJsonAsync("/admin/ledger");
        Assert.Equal(1, status.GetProperty("duplicates_since_start").GetInt64());
    }

    [Fact]
    public async Task Entries_written_while_admin_is_down_land_exactly_once_across_a_restart_mid_drain()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_restart", batchSize: 20);
        const int before = 3000, during = 500;

        // Traffic before Admin ever ran: no consumer group exists yet, and none of it may be lost.
        await env.AddEntriesAsync("early", before);

        await using (var first = env.StartAdmin())
        {
            await EventuallyAsync(async () => await env.CountRowsAsync() > 0, DrainTimeout, "the first Admin to start draining");
        } // disposed while (most likely) still draining: the host stops between or after batches
        output.WriteLine($"Rows when the first Admin stopped: {await env.CountRowsAsync()} of {before}");

        // Traffic keeps flowing while no Admin runs.
        await env.AddEntriesAsync("late", during);

        await using var second = env.StartAdmin();
        await EventuallyAsync(async () => await env.CountRowsAsync() >= before + during, DrainTimeout, "every entry to be stored");
        await WaitUntilDrainedAsync(env.Redis);

        Assert.Equal(before + during, await env.CountRowsAsync());
        Assert.Equal(before + during, await ScalarAsync(env.Database, "SELECT COUNT(DISTINCT request_id) FROM usage_records"));
        Assert.Equal((long)(before + during) * 1000, await ScalarAsync(env.Database, "SELECT SUM(prompt_tokens) FROM usage_records"));
        var pending = await env.Redis.StreamPendingAsync(UsageStream, UsageGroup);
        Assert.Equal(0, pending.PendingMessageCount);
    }

    [Fact]
    public async Task Entries_left_pending_by_a_crash_between_commit_and_ack_are_stored_once_at_the_next_start()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_crash");
        await using (env.StartAdmin())
        {
            // Only to create the schema and the group.
            await EventuallyAsync(async () => (await GroupStateAsync(env.Redis)).Lag is not null, DrainTimeout, "the group to exist");
        }

        // What a crash leaves behind: entries delivered to our consumer, half of them committed, none acknowledged.
        await env.AddEntriesAsync("crash", 10);
        var delivered = await env.Redis.StreamReadGroupAsync(UsageStream, UsageGroup, env.Consumer, StreamPosition.NewMessages, 10);
        Assert.Equal(10, delivered.Length);
        for (var i = 0; i < 5; i++)
        {
            await InsertUsageAsync(env.Database, $"crash-{i}", null, 0.0026m, prompt: 1000);
        }

        await using var restarted = env.StartAdmin();
        await WaitUntilDrainedAsync(env.Redis);

        Assert.Equal(10, await env.CountRowsAsync());
        Assert.Equal(10, await ScalarAsync(env.Database, "SELECT COUNT(*) FROM usage_records WHERE request_id LIKE 'crash-%'"));
        Assert.Equal(0, (await env.Redis.StreamPendingAsync(UsageStream, UsageGroup)).PendingMessageCount);
    }

    [Fact]
    public async Task Entries_another_consumer_left_pending_are_claimed_after_the_idle_time()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_claim");
        await env.Redis.StreamCreateConsumerGroupAsync(UsageStream, UsageGroup, "0-0", createStream: true);
        await env.AddEntriesAsync("orphan", 7);
        // A replica that read these and died (its name will never come back).
        Assert.Equal(7, (await env.Redis.StreamReadGroupAsync(UsageStream, UsageGroup, "admin-dead-replica", StreamPosition.NewMessages, 100)).Length);

        await using var admin = env.StartAdmin();
        await EventuallyAsync(async () => await env.CountRowsAsync() == 7, DrainTimeout, "the orphaned entries to be claimed and stored");
        await WaitUntilDrainedAsync(env.Redis);

        Assert.Equal(0, (await env.Redis.StreamPendingAsync(UsageStream, UsageGroup)).PendingMessageCount);
    }

    [Fact]
    public async Task Malformed_entries_are_parked_and_the_ledger_keeps_going()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_malformed");
        await using var admin = env.StartAdmin();

        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("good-1"));
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("bad-tokens", new Dictionary<string, string?> { ["prompt_tokens"] = "lots" }));
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("ignored", new Dictionary<string, string?> { ["request_id"] = null }));
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("bad-cost", new Dictionary<string, string?> { ["cost_usd"] = "-1" }));
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("good-2"));
        await WaitUntilDrainedAsync(env.Redis);

        // Still alive after the bad ones: a later entry is stored too.
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("good-3"));
        await EventuallyAsync(async () => await env.CountRowsAsync() == 3, DrainTimeout, "the entry after the bad ones to be stored");
        await WaitUntilDrainedAsync(env.Redis);

        Assert.Equal(3, await ScalarAsync(env.Database, "SELECT COUNT(*) FROM usage_records WHERE request_id LIKE 'good-%'"));
        using var client = admin.CreateAdminClient();
        var parked = (await client.GetJsonAsync("/admin/ledger/dead-letters")).EnumerateArray().ToList();
        Assert.Equal(3, parked.Count);
        var badTokens = Assert.Single(parked, p => p.GetProperty("request_id").GetString() == "bad-tokens");
        Assert.Contains("prompt_tokens", badTokens.GetProperty("reason").GetString());
        Assert.Equal("lots", badTokens.GetProperty("fields").GetProperty("prompt_tokens").GetString());
        var noId = Assert.Single(parked, p => p.GetProperty("request_id").ValueKind == JsonValueKind.Null);
        Assert.Contains("request_id", noId.GetProperty("reason").GetString());
        Assert.Contains(parked, p => p.GetProperty("request_id").GetString() == "bad-cost");
        Assert.Equal(0, (await env.Redis.StreamPendingAsync(UsageStream, UsageGroup)).PendingMessageCount);
    }

    [Fact]
    public async Task Ledger_recreates_the_consumer_group_after_redis_loses_it()
    {
        await using var env = await LedgerEnvironment.CreateAsync(this, "ledger_flush");
        await using var admin = env.StartAdmin();
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("before-flush"));
        await EventuallyAsync(async () => await env.CountRowsAsync() == 1, DrainTimeout, "the first entry to be stored");

        await env.Redis.ExecuteAsync("FLUSHDB"); // the stream and its group are gone
        await env.Redis.StreamAddAsync(UsageStream, UsageEntry("after-flush"));

        await EventuallyAsync(async () => await env.CountRowsAsync() == 2, DrainTimeout, "the entry written after the flush to be stored");
        await WaitUntilDrainedAsync(env.Redis);
    }

    /// <summary>One test's Postgres database, Redis database index and Admin settings.</summary>
    private sealed class LedgerEnvironment : IAsyncDisposable
    {
        private readonly ConnectionMultiplexer _connection;
        private readonly Dictionary<string, string?> _settings;

        private LedgerEnvironment(string database, ConnectionMultiplexer connection, Dictionary<string, string?> settings, string consumer)
        {
            Database = database;
            _connection = connection;
            _settings = settings;
            Consumer = consumer;
        }

        public string Database { get; }
        public string Consumer { get; }
        public IDatabase Redis => _connection.GetDatabase();

        public static async Task<LedgerEnvironment> CreateAsync(UsageLedgerTests owner, string name, int batchSize = 100)
        {
            var index = Interlocked.Increment(ref owner._nextDatabase) % 16;
            var redisConnection = owner._redis.ConnectionStringForDatabase(index);
            var database = await owner._postgres.CreateDatabaseAsync(name);
            var consumer = "admin-test-" + name;
            var settings = AdminAppFactory.SettingsFor(database, redisConnection);
            settings["Admin:Ledger:ConsumerName"] = consumer;
            settings["Admin:Ledger:BatchSize"] = batchSize.ToString(CultureInfo.InvariantCulture);
            settings["Admin:Ledger:PollInterval"] = "00:00:00.050";
            settings["Admin:Ledger:ClaimIdleTime"] = "00:00:00.300";
            settings["Admin:Ledger:RetryDelay"] = "00:00:00.100";
            settings["Admin:Ledger:MaxRetryDelay"] = "00:00:01";
            settings["Admin:Ledger:StatusInterval"] = "00:00:00.200";
            var connection = await ConnectionMultiplexer.ConnectAsync(redisConnection + ",allowAdmin=true");
            return new LedgerEnvironment(database, connection, settings, consumer);
        }

        /// <summary>Starts an Admin (the host starts on first use of the factory).</summary>
        public AdminAppFactory StartAdmin()
        {
            var factory = new AdminAppFactory(_settings);
            _ = factory.Services;
            return factory;
        }

        public async Task AddEntriesAsync(string prefix, int count)
        {
            var batch = Redis.CreateBatch();
            var adds = Enumerable.Range(0, count)
                .Select(i => batch.StreamAddAsync(UsageStream, UsageEntry($"{prefix}-{i}")))
                .ToList();
            batch.Execute();
            await Task.WhenAll(adds);
        }

        public Task<long> CountRowsAsync() => ScalarAsync(Database, "SELECT COUNT(*) FROM usage_records");

        public async Task<Dictionary<string, object?>> ReadRowAsync(string requestId)
        {
            await using var connection = new NpgsqlConnection(Database);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT * FROM usage_records WHERE request_id = @id", connection);
            command.Parameters.AddWithValue("id", requestId);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync(), $"no row for {requestId}");
            var row = new Dictionary<string, object?>();
            for (var i = 0; i < reader.FieldCount; i++)
            {
                row[reader.GetName(i)] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }
            return row;
        }

        public async ValueTask DisposeAsync() => await _connection.DisposeAsync();
    }
}
