using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TokenRouter.Admin.Alerts;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin.Alerts;

/// <summary>
/// Budget alert webhooks end to end against real PostgreSQL and Redis: usage entries go into the gateway's stream, the
/// ledger stores them, thresholds are detected from the ledger, and a receiver over real HTTP gets signed deliveries.
/// The class runs its own Redis server (the usage stream is process-wide in a database); each test takes a database
/// index and a fresh Postgres database of its own.
/// </summary>
public sealed class BudgetAlertTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
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
    public async Task A_team_with_two_keys_crossing_50_80_and_100_percent_gets_exactly_one_delivery_per_threshold()
    {
        await using var env = await AlertEnvironment.CreateAsync(this, "alerts_team");
        await using var receiver = await WebhookReceiver.StartAsync("team-receiver-secret-0123456789");
        var webhookId = await env.CreateWebhookAsync(new { url = receiver.Url, secret = receiver.Secret });
        var team = await env.CreateTeamAsync(new { name = "research", budget_usd = 1, budget_duration = "1mo" });
        var alice = await env.CreateKeyInTeamAsync("alice", team);
        var bob = await env.CreateKeyInTeamAsync("bob", team);

        // 0.55 → 50 %; 0.85 → 80 %; 1.05 → 100 %; then usage keeps coming, from both keys.
        (Guid Key, decimal Cost)[] usage =
            [(alice, 0.30m), (bob, 0.25m), (alice, 0.30m), (bob, 0.20m), (alice, 0.10m), (bob, 0.10m), (alice, 0.05m)];
        var n = 0;
        foreach (var (key, cost) in usage)
        {
            await env.AddUsageAsync($"team-{n++}", key, cost);
            await WaitUntilDrainedAsync(env.Redis, Wait); // one batch each: every step is its own detection
        }
        await env.WaitUntilSettledAsync(webhookId, expected: 3);

        var accepted = receiver.Accepted;
        Assert.Equal([50, 80, 100], accepted.Select(r => r.Json.GetProperty("threshold_percent").GetInt32()).Order());
        Assert.Equal(accepted.Count, receiver.Requests.Count);
        foreach (var request in accepted)
        {
            Assert.True(request.SignatureValid, $"signature {request.Signature} does not verify");
            var json = request.Json;
            Assert.Equal("budget.threshold", json.GetProperty("event").GetString());
            Assert.Equal("budget.threshold", request.Event);
            Assert.Equal(request.DeliveryId, json.GetProperty("delivery_id").GetString());
            var subject = json.GetProperty("subject");
            Assert.Equal("team", subject.GetProperty("type").GetString());
            Assert.Equal(team, subject.GetProperty("id").GetGuid());
            Assert.Equal("research", subject.GetProperty("name").GetString());
            Assert.Equal(1m, json.GetProperty("budget_usd").GetDecimal());
            Assert.True(json.GetProperty("spent_usd").GetDecimal() >= json.GetProperty("threshold_percent").GetInt32() / 100m);
            var now = DateTimeOffset.UtcNow;
            Assert.Equal(new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero), json.GetProperty("period_start").GetDateTimeOffset());
            Assert.Equal(json.GetProperty("period_start").GetDateTimeOffset().AddMonths(1), json.GetProperty("period_end").GetDateTimeOffset());
            Assert.Equal(JsonValueKind.String, json.GetProperty("occurred_at").ValueKind);
        }
        Assert.Equal(3, await ScalarAsync(env.Database, "SELECT count(*) FROM budget_alerts WHERE subject_type = 'team'"));
        Assert.Equal(0, await ScalarAsync(env.Database, "SELECT count(*) FROM budget_alerts WHERE subject_type = 'key'"));
    }

    [Fact]
    public async Task A_key_exhausting_its_own_budget_is_reported_as_disabled_to_the_webhooks_that_want_it()
    {
        await using var env = await AlertEnvironment.CreateAsync(this, "alerts_key");
        await using var all = await WebhookReceiver.StartAsync("all-events-secret-0123456789");
        await using var onlyDisabled = await WebhookReceiver.StartAsync("disabled-only-secret-0123456789");
        var allId = await env.CreateWebhookAsync(new { url = all.Url, secret = all.Secret });
        var disabledId = await env.CreateWebhookAsync(new { url = onlyDisabled.Url, secret = onlyDisabled.Secret, events = new[] { "key.disabled_by_budget" } });
        var key = (await env.Admin.CreateKeyAsync(new { name = "carol", quota_usd = 2 })).GetProperty("id").GetGuid();

        await env.AddUsageAsync("carol-1", key, 2.5m); // straight past every threshold in one request
        await WaitUntilDrainedAsync(env.Redis, Wait);
        await env.WaitUntilSettledAsync(allId, expected: 4);
        await env.WaitUntilSettledAsync(disabledId, expected: 1);

        Assert.Equal(["budget.threshold:100", "budget.threshold:50", "budget.threshold:80", "key.disabled_by_budget:100"],
            all.Accepted.Select(r => $"{r.Event}:{r.Json.GetProperty("threshold_percent").GetInt32()}").Order(StringComparer.Ordinal));
        var disabled = Assert.Single(onlyDisabled.Accepted);
        Assert.True(disabled.SignatureValid);
        Assert.Equal("key.disabled_by_budget", disabled.Json.GetProperty("event").GetString());
        Assert.Equal("key", disabled.Json.GetProperty("subject").GetProperty("type").GetString());
        Assert.Equal("carol", disabled.Json.GetProperty("subject").GetProperty("name").GetString());
        Assert.Equal(2.5m, disabled.Json.GetProperty("spent_usd").GetDecimal());
        // A lifetime budget has no period.
        Assert.Equal(JsonValueKind.Null, disabled.Json.GetProperty("period_start").ValueKind);
    }

    [Fact]
    public async Task A_flaky_receiver_gets_the_delivery_after_retries_and_the_attempts_are_recorded()
    {
        await using var env = await AlertEnvironment.CreateAsync(this, "alerts_flaky");
        await using var receiver = await WebhookReceiver.StartAsync("flaky-receiver-secret-0123456789");
        receiver.FailNext(500, 500);
        var webhookId = await env.CreateWebhookAsync(new { url = receiver.Url, secret = receiver.Secret });
        var key = (await env.Admin.CreateKeyAsync(new { name = "dave", quota_usd = 10 })).GetProperty("id").GetGuid();

        await env.AddUsageAsync("dave-1", key, 6m);
        await WaitUntilDrainedAsync(env.Redis, Wait);
        var delivery = Assert.Single(await env.WaitUntilSettledAsync(webhookId, expected: 1));

        Assert.Equal("delivered", delivery.GetProperty("status").GetString());
        Assert.Equal(3, delivery.GetProperty("attempts").GetInt32());
        Assert.Equal(200, delivery.GetProperty("last_status_code").GetInt32());
        Assert.Equal(JsonValueKind.Null, delivery.GetProperty("last_error").ValueKind);
        Assert.Equal(JsonValueKind.Null, delivery.GetProperty("next_attempt_at").ValueKind);
        Assert.Equal(JsonValueKind.String, delivery.GetProperty("delivered_at").ValueKind);
        Assert.Equal(50, delivery.GetProperty("threshold_percent").GetInt32());
        Assert.Equal(key, delivery.GetProperty("subject_id").GetGuid());
        Assert.Equal([500, 500, 200], receiver.Requests.Select(r => r.AnsweredWith));
        // Every attempt carries the same delivery id and body, each signed.
        Assert.Single(receiver.Requests.Select(r => r.DeliveryId).Distinct());
        Assert.Single(receiver.Requests.Select(r => r.Body).Distinct());
        Assert.All(receiver.Requests, r => Assert.True(r.SignatureValid));
    }

    [Fact]
    public async Task A_receiver_that_keeps_failing_is_given_up_after_the_configured_attempts()
    {
        await using var env = await AlertEnvironment.CreateAsync(this, "alerts_giveup", maxAttempts: 3);
        await using var receiver = await WebhookReceiver.StartAsync("failing-receiver-secret-0123456789");
        receiver.AlwaysFail = true;
        var webhookId = await env.CreateWebhookAsync(new { url = receiver.Url, secret = receiver.Secret, events = new[] { "key.disabled_by_budget" } });
        var key = (await env.Admin.CreateKeyAsync(new { name = "erin", quota_usd = 1 })).GetProperty("id").GetGuid();

        await env.AddUsageAsync("erin-1", key, 1m);
        await WaitUntilDrainedAsync(env.Redis, Wait);
        var delivery = Assert.Single(await env.WaitUntilSettledAsync(webhookId, expected: 1));

        Assert.Equal("failed", delivery.GetProperty("status").GetString());
        Assert.Equal(3, delivery.GetProperty("attempts").GetInt32());
        Assert.Equal(500, delivery.GetProperty("last_status_code").GetInt32());
        Assert.Contains("500", delivery.GetProperty("last_error").GetString(), StringComparison.Ordinal);
        Assert.Equal(3, receiver.Requests.Count);
    }

    [Fact]
    public async Task A_new_budget_period_fires_the_thresholds_again()
    {
        await using var env = await AlertEnvironment.CreateAsync(this, "alerts_period");
        await using var receiver = await WebhookReceiver.StartAsync("period-receiver-secret-0123456789");
        var webhookId = await env.CreateWebhookAsync(new { url = receiver.Url, secret = receiver.Secret, events = new[] { "budget.threshold" } });
        var key = (await env.Admin.CreateKeyAsync(new { name = "frank", quota_usd = 1, budget_duration = "20s" })).GetProperty("id").GetGuid();

        // Usage early in a 20 s period (aligned on the epoch), so it is stored and detected within that period.
        var first = await WaitForPeriodStartAsync();
        await env.AddUsageAsync("frank-1", key, 0.6m);
        await WaitUntilDrainedAsync(env.Redis, Wait);
        await env.AddUsageAsync("frank-2", key, 0.05m); // more in the same period: nothing new
        await WaitUntilDrainedAsync(env.Redis, Wait);
        await env.WaitUntilSettledAsync(webhookId, expected: 1);

        var second = await WaitForPeriodStartAsync(after: first);
        await env.AddUsageAsync("frank-3", key, 0.6m);
        await WaitUntilDrainedAsync(env.Redis, Wait);
        await env.WaitUntilSettledAsync(webhookId, expected: 2);

        var periods = receiver.Accepted.Select(r => r.Json.GetProperty("period_start").GetDateTimeOffset()).Order().ToList();
        Assert.Equal([first, second], periods);
        Assert.All(receiver.Accepted, r => Assert.Equal(50, r.Json.GetProperty("threshold_percent").GetInt32()));
        Assert.All(receiver.Accepted, r => Assert.Equal(TimeSpan.FromSeconds(20),
            r.Json.GetProperty("period_end").GetDateTimeOffset() - r.Json.GetProperty("period_start").GetDateTimeOffset()));
    }

    [Fact]
    public async Task Two_detectors_racing_on_the_same_crossing_raise_each_alert_once()
    {
        await using var env = await AlertEnvironment.CreateAsync(this, "alerts_race", webhooksEnabled: false);
        await using var receiver = await WebhookReceiver.StartAsync("race-receiver-secret-0123456789");
        var webhookId = await env.CreateWebhookAsync(new { url = receiver.Url, secret = receiver.Secret });
        var key = (await env.Admin.CreateKeyAsync(new { name = "grace", quota_usd = 1 })).GetProperty("id").GetGuid();
        // Straight into the ledger: the two detectors below play two Admin replicas that both saw this spend.
        await InsertUsageAsync(env.Database, "grace-1", key, 0.9m);

        var services = env.Factory.Services;
        async Task<int> DetectAsync()
        {
            await using var scope = services.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<BudgetAlertDetector>().DetectAsync([key], CancellationToken.None);
        }
        var raised = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(DetectAsync)));

        Assert.Equal(2, raised.Sum()); // 50 and 80 %, once in all
        Assert.Equal(2, await ScalarAsync(env.Database, "SELECT count(*) FROM budget_alerts"));
        Assert.Equal(2, await ScalarAsync(env.Database, $"SELECT count(*) FROM webhook_deliveries WHERE webhook_id = '{webhookId}'"));
    }

    [Fact]
    public async Task Deliveries_queued_while_no_replica_sends_are_sent_by_the_next_start()
    {
        await using var receiver = await WebhookReceiver.StartAsync("restart-receiver-secret-0123456789");
        Guid webhookId;
        string database, redis;
        await using (var stopped = await AlertEnvironment.CreateAsync(this, "alerts_restart", webhooksEnabled: false))
        {
            database = stopped.Database;
            redis = stopped.RedisConnection;
            webhookId = await stopped.CreateWebhookAsync(new { url = receiver.Url, secret = receiver.Secret });
            var key = (await stopped.Admin.CreateKeyAsync(new { name = "heidi", quota_usd = 1 })).GetProperty("id").GetGuid();
            await stopped.AddUsageAsync("heidi-1", key, 0.5m);
            await WaitUntilDrainedAsync(stopped.Redis, Wait);
            Assert.Equal(1, await ScalarAsync(database, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"));
        }
        Assert.Empty(receiver.Requests);

        // A new Admin process on the same database (and Redis, where the key ring that encrypted the secret is) finds the
        // outbox row and sends it.
        await using var restarted = await AlertEnvironment.CreateAsync(this, "alerts_restart", existingDatabase: database, existingRedis: redis);
        var delivery = Assert.Single(await restarted.WaitUntilSettledAsync(webhookId, expected: 1));
        Assert.Equal("delivered", delivery.GetProperty("status").GetString());
        Assert.True(Assert.Single(receiver.Accepted).SignatureValid);
    }

    /// <summary>Waits until the current 20 s period is at most 5 s old, and returns its start.</summary>
    private static async Task<DateTimeOffset> WaitForPeriodStartAsync(DateTimeOffset? after = null)
    {
        while (true)
        {
            var now = DateTimeOffset.UtcNow;
            var start = DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds() / 20 * 20);
            if (now - start < TimeSpan.FromSeconds(5) && (after is null || start > after))
            {
                return start;
            }
            await Task.Delay(200);
        }
    }

    private sealed class AlertEnvironment : IAsyncDisposable
    {
        private readonly ConnectionMultiplexer _connection;

        private AlertEnvironment(string database, ConnectionMultiplexer connection, AdminAppFactory factory)
        {
            Database = database;
            _connection = connection;
            Factory = factory;
            Admin = factory.CreateAdminClient();
        }

        public string Database { get; }
        public required string RedisConnection { get; init; }
        public AdminAppFactory Factory { get; }
        public HttpClient Admin { get; }
        public IDatabase Redis => _connection.GetDatabase();

        public static async Task<AlertEnvironment> CreateAsync(BudgetAlertTests owner, string name, int maxAttempts = 5,
            bool webhooksEnabled = true, string? existingDatabase = null, string? existingRedis = null)
        {
            var redisConnection = existingRedis ?? owner._redis.ConnectionStringForDatabase(Interlocked.Increment(ref owner._nextDatabase) % 16);
            var database = existingDatabase ?? await owner._postgres.CreateDatabaseAsync(name);
            var settings = AdminAppFactory.SettingsFor(database, redisConnection);
            settings["Admin:Ledger:ConsumerName"] = "admin-test-" + name;
            settings["Admin:Ledger:PollInterval"] = "00:00:00.050";
            settings["Admin:Webhooks:Enabled"] = webhooksEnabled ? "true" : "false";
            settings["Admin:Webhooks:PollInterval"] = "00:00:00.050";
            settings["Admin:Webhooks:RetryDelay"] = "00:00:00.100";
            settings["Admin:Webhooks:MaxRetryDelay"] = "00:00:00.300";
            settings["Admin:Webhooks:MaxAttempts"] = maxAttempts.ToString(CultureInfo.InvariantCulture);
            settings["Admin:Webhooks:Timeout"] = "00:00:05";
            var connection = await ConnectionMultiplexer.ConnectAsync(redisConnection);
            var factory = new AdminAppFactory(settings);
            _ = factory.Services; // start the host
            return new AlertEnvironment(database, connection, factory) { RedisConnection = redisConnection };
        }

        public async Task<Guid> CreateWebhookAsync(object body)
        {
            using var response = await Admin.PostAsJsonAsync("/admin/webhooks", body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Created, text);
            return JsonDocument.Parse(text).RootElement.GetProperty("id").GetGuid();
        }

        public async Task<Guid> CreateTeamAsync(object body)
        {
            using var response = await Admin.PostAsJsonAsync("/admin/teams", body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Created, text);
            return JsonDocument.Parse(text).RootElement.GetProperty("id").GetGuid();
        }

        public async Task<Guid> CreateKeyInTeamAsync(string name, Guid team) =>
            (await Admin.CreateKeyAsync(new { name, team_id = team })).GetProperty("id").GetGuid();

        /// <summary>A usage entry as a gateway writes it after a request of <paramref name="key"/> that cost <paramref name="cost"/>.</summary>
        public Task AddUsageAsync(string requestId, Guid key, decimal cost) =>
            Redis.StreamAddAsync(UsageStream, UsageEntry(requestId, new Dictionary<string, string?>
            {
                ["key_id"] = key.ToString("D"),
                ["cost_usd"] = cost.ToString(CultureInfo.InvariantCulture),
            }));

        /// <summary>
        /// Waits until the webhook has <paramref name="expected"/> deliveries and none is pending (each delivered or given
        /// up), and returns them from <c>GET /admin/webhooks/{id}/deliveries</c>.
        /// </summary>
        public async Task<JsonElement[]> WaitUntilSettledAsync(Guid webhookId, int expected)
        {
            JsonElement[] deliveries = [];
            await Eventually.TrueAsync(async () =>
            {
                deliveries = [.. (await Admin.GetJsonAsync($"/admin/webhooks/{webhookId}/deliveries")).EnumerateArray()];
                return deliveries.Length >= expected && deliveries.All(d => d.GetProperty("status").GetString() != "pending");
            }, () => $"{expected} settled deliveries of webhook {webhookId}; have: {string.Join("; ", deliveries.Select(d => d.ToString()))}", Wait);
            Assert.Equal(expected, deliveries.Length);
            return deliveries;
        }

        public async ValueTask DisposeAsync()
        {
            Admin.Dispose();
            await Factory.DisposeAsync();
            await _connection.DisposeAsync();
        }
    }
}
