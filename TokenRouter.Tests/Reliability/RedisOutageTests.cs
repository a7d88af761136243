using System.Net;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Resilience;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Reliability.OutageKit;

namespace TokenRouter.Tests.Reliability;

/// <summary>
/// A real redis-server is stopped under a running gateway (and Admin, PostgreSQL, the fake provider) and started again:
/// known keys keep working, quotas and RPM/TPM follow <c>REDIS_OUTAGE_POLICY</c>, refusals are 503 + Retry-After in the
/// client's shape, and the usage of every served request reaches Admin's ledger exactly once when Redis is back.
/// </summary>
public sealed class RedisOutageTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _provider = await FakeProvider.StartAsync();
        // gpt-4o: 10 prompt + 1000 completion tokens = $0.010025 a request.
        _provider.RespondOpenAIText("hi", new OpenAIUsage(10, 1000));
    }

    public async Task DisposeAsync()
    {
        await _provider.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task Fail_open_serves_known_keys_within_their_last_known_budget_and_the_ledger_equals_what_was_served()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        var database = await postgres.CreateDatabaseAsync("redis_outage_fail_open");
        await using var admin = new AdminAppFactory(AdminAppFactory.SettingsFor(database, Tolerant(_redis.ConnectionString)));
        using var adminClient = admin.CreateAdminClient();
        // Room for four requests and a bit: one before the outage, at most three during it (each reserves its worst case).
        var budgeted = (await adminClient.CreateKeyAsync(new { name = "budgeted", quota_usd = 0.045m, rpm_limit = 1000 })).GetProperty("key").GetString()!;
        var rateOnly = (await adminClient.CreateKeyAsync(new { name = "rate-only", rpm_limit = 1000 })).GetProperty("key").GetString()!;
        var neverUsed = (await adminClient.CreateKeyAsync(new { name = "never-used", rpm_limit = 1000 })).GetProperty("key").GetString()!;

        await using var gateway = new GatewayFactory(GatewaySettings(_provider, _redis, "fail-open"));
        using var budgetedClient = gateway.CreateGatewayClient(budgeted);
        using var rateOnlyClient = gateway.CreateGatewayClient(rateOnly);
        using var unknownClient = gateway.CreateGatewayClient(neverUsed);
        var served = new List<Served>();
        // Admin syncs new keys into Redis in the background: wait until the gateway knows them.
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var first = await ChatAsync(budgetedClient);
            if (first.StatusCode == HttpStatusCode.OK) served.Add(ServedFrom(first));
            return first.StatusCode == HttpStatusCode.OK;
        }, Patience, "the budgeted key to work at the gateway");
        using (var first = await ChatAsync(rateOnlyClient)) served.Add(ServedFrom(first));
        var store = Assert.IsType<DegradableKeyLimitStore>(gateway.Service<IKeyLimitStore>());
        var sink = gateway.Service<RedisUsageSink>();
        // A record is written as its handler ends, maybe after the client has its answer: wait for the ledger itself, so no
        // record is in Redis only after the snapshot taken when Redis stops.
        await AdminTestHelpers.EventuallyAsync(async () => (await LedgerAsync(database)).Count == served.Count, Patience,
            "the usage before the outage to reach the ledger");
        var perRequest = served[0].CostUsd;

        await StopRedisKeepingItsDataAsync();

        // Known keys keep working; the quota key only while its last known remaining budget covers a worst case.
        var duringOutage = 0;
        HttpResponseMessage? refusal = null;
        for (var i = 0; i < 10 && refusal is null; i++)
        {
            var response = await ChatAsync(budgetedClient);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                served.Add(ServedFrom(response));
                duringOutage++;
                response.Dispose();
            }
            else refusal = response;
        }
        Assert.NotNull(refusal);
        using (refusal) await AssertOpenAI503Async(refusal, "quota_store_unavailable");
        Assert.InRange(duringOutage, 1, 3);
        Assert.True(served.Where(s => s.RequestId != served[1].RequestId).Sum(s => s.CostUsd) <= 0.045m, "the quota was overspent");
        using (var anthropic = await budgetedClient.PostAsync("v1/messages", Json(MessagesBody))) await AssertAnthropic503Async(anthropic);
        for (var i = 0; i < 3; i++)
        {
            using var response = await ChatAsync(rateOnlyClient);
            served.Add(ServedFrom(response)); // RPM/TPM counted locally, served
        }
        // A key this gateway never saw cannot be checked: refused politely, never let in.
        using (var unknown = await ChatAsync(unknownClient)) await AssertOpenAI503Async(unknown, "key_store_unavailable");
        Assert.Equal(served.Count, _provider.CallCount);
        Assert.Equal(duringOutage + 3, sink.Backlog); // buffered, not lost

        await _redis.StartAsync();

        // Usage delivered once, the ledger equals what was served request by request, and the outage's spend is booked.
        var db = (await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString)).GetDatabase();
        // (Admin trims the stream as it writes the ledger, so the ledger is where every record must be, once.)
        await AdminTestHelpers.EventuallyAsync(() => Task.FromResult(sink.Backlog == 0), Patience, "buffered usage to reach Redis");
        Assert.Equal(0, sink.Dropped);
        await AdminTestHelpers.EventuallyAsync(async () => (await LedgerAsync(database)).Count >= served.Count, Patience,
            "Admin to write the ledger");
        AssertSameRequests(Expected(served), await LedgerAsync(database));
        Assert.Equal(served.Count, _provider.CallCount);

        var budgetedSpend = served.Take(1).Concat(served.Skip(2).Take(duringOutage)).Sum(s => s.CostUsd);
        Assert.Equal(perRequest * (1 + duringOutage), budgetedSpend);
        // The key's shared spend in Redis includes what was served during the outage (booked once Redis answered).
        await AdminTestHelpers.EventuallyAsync(async () => await WorksAgainAsync(budgetedClient, served, db, budgetedSpend), Patience,
            "the outage's spend to be booked and the key to be checked against Redis again");
    }

    [Fact]
    public async Task Fail_open_bounds_a_teams_keys_together_by_the_teams_last_known_budget()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        var database = await postgres.CreateDatabaseAsync("redis_outage_team");
        await using var admin = new AdminAppFactory(AdminAppFactory.SettingsFor(database, Tolerant(_redis.ConnectionString)));
        using var adminClient = admin.CreateAdminClient();
        // Room for four requests and a bit, shared by two keys without budgets of their own.
        using var created = await adminClient.PostAsync("/admin/teams",
            Json("""{"name":"outage-team","budget_usd":0.045,"budget_duration":"1mo"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var teamId = System.Text.Json.JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString();
        var keys = new List<string>();
        foreach (var name in new[] { "ann", "ben" })
            keys.Add((await adminClient.CreateKeyAsync(new { name, team_id = teamId })).GetProperty("key").GetString()!);

        await using var gateway = new GatewayFactory(GatewaySettings(_provider, _redis, "fail-open"));
        using var ann = gateway.CreateGatewayClient(keys[0]);
        using var ben = gateway.CreateGatewayClient(keys[1]);
        var served = new List<Served>();
        foreach (var client in new[] { ann, ben })
        {
            await AdminTestHelpers.EventuallyAsync(async () =>
            {
                using var first = await ChatAsync(client);
                if (first.StatusCode == HttpStatusCode.OK) served.Add(ServedFrom(first));
                return first.StatusCode == HttpStatusCode.OK;
            }, Patience, "the team's keys to work at the gateway");
        }
        var sink = gateway.Service<RedisUsageSink>();
        // A record is written as its handler ends, maybe after the client has its answer: wait for the ledger itself, so no
        // record is in Redis only after the snapshot below.
        await AdminTestHelpers.EventuallyAsync(async () => (await LedgerAsync(database)).Count == served.Count, Patience,
            "the usage before the outage to reach the ledger");

        await StopRedisKeepingItsDataAsync();

        // Both keys draw on one locally kept team budget: together they stop where the team's remaining budget ends.
        var duringOutage = 0;
        var refusals = 0;
        for (var i = 0; i < 8; i++)
        {
            using var response = await ChatAsync(i % 2 == 0 ? ann : ben);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                served.Add(ServedFrom(response));
                duringOutage++;
            }
            else
            {
                await AssertOpenAI503Async(response, "quota_store_unavailable");
                refusals++;
            }
        }
        Assert.InRange(duringOutage, 0, 2); // 0.045 − two served leaves less than three worst cases
        Assert.True(refusals >= 6, $"only {refusals} refusals");
        Assert.True(served.Sum(s => s.CostUsd) <= 0.045m, "the team's budget was overspent");

        await _redis.StartAsync();
        await AdminTestHelpers.EventuallyAsync(() => Task.FromResult(sink.Backlog == 0), Patience, "buffered usage to reach Redis");
        var ledger = 0;
        await Eventually.TrueAsync(async () => (ledger = (await LedgerAsync(database)).Count) >= served.Count,
            () => $"Admin to write the ledger ({ledger} of {served.Count} rows; served during the outage {duringOutage}; sink dropped {sink.Dropped})",
            Patience);
        AssertSameRequests(Expected(served), await LedgerAsync(database));
        Assert.Equal(served.Count, _provider.CallCount);

    }

    /// <summary>Production Redis persists its data (RDB/AOF); the test server does not, so snapshot it before the stop.</summary>
    private async Task StopRedisKeepingItsDataAsync()
    {
        Assert.Equal("+OK", await _redis.SendCommandAsync(["SAVE"]));
        await _redis.StopAsync();
    }

    private static async Task<bool> WorksAgainAsync(HttpClient client, List<Served> served, IDatabase db, decimal spent)
    {
        var quotaKeys = new List<RedisKey>();
        await foreach (var key in db.Multiplexer.GetServers()[0].KeysAsync(pattern: "tokenrouter:quota:*")) quotaKeys.Add(key);
        var total = 0L;
        foreach (var key in quotaKeys)
            if (await db.KeyTypeAsync(key) == RedisType.Hash) total += (long)await db.HashGetAsync(key, "spent"); // not the holds zset
        if (total != QuotaEstimator.ToNanos(spent)) return false;
        // Less than one worst case is left: Redis, answering again, refuses with the quota's own 429.
        using var response = await ChatAsync(client);
        if (response.StatusCode == HttpStatusCode.OK) served.Add(ServedFrom(response));
        return response.StatusCode == HttpStatusCode.TooManyRequests;
    }

    [Fact]
    public async Task Fail_closed_refuses_limited_keys_with_503_in_both_shapes_serves_unlimited_ones_and_recovers()
    {
        await using var gateway = new GatewayFactory(GatewaySettings(_provider, _redis, "fail-closed"));
        var db = (await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString)).GetDatabase();
        const string limitedKey = "sk-tr-outage-limited-0123456789";
        await db.HashSetAsync(AdminTestHelpers.RedisKeyFor(limitedKey),
            [new("id", "8d3c7a52-0000-4000-8000-000000000001"), new("name", "limited"), new("enabled", "1"), new("rpm_limit", "100")]);
        using var limited = gateway.CreateGatewayClient(limitedKey);
        using var unlimited = gateway.CreateGatewayClient(); // a configured key with no quota and no RPM/TPM
        using (var ok = await ChatAsync(limited)) ServedFrom(ok);

        await StopRedisKeepingItsDataAsync();

        using (var refused = await ChatAsync(limited))
        {
            await AssertOpenAI503Async(refused, "quota_store_unavailable");
            Assert.Equal(TimeSpan.FromSeconds(2), refused.Headers.RetryAfter!.Delta);
        }
        using (var refused = await limited.PostAsync("v1/messages", Json(MessagesBody))) await AssertAnthropic503Async(refused);
        using (var ok = await ChatAsync(unlimited)) ServedFrom(ok);
        Assert.Equal(2, _provider.CallCount); // nothing refused reached the provider
        Assert.True(gateway.Service<RedisCircuit>().IsDown);

        await _redis.StartAsync();

        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var response = await ChatAsync(limited);
            return response.StatusCode == HttpStatusCode.OK;
        }, Patience, "the limited key to be served once Redis answers");
        Assert.False(gateway.Service<RedisCircuit>().IsDown);
    }
}
