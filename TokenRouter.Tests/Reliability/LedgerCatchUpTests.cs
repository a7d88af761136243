using System.Net;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Reliability.OutageKit;

namespace TokenRouter.Tests.Reliability;

/// <summary>
/// PostgreSQL and Admin are off the gateway's path: with either stopped the gateway serves as before, usage waits in
/// the Redis stream, and once they are back Admin's ledger equals what was served, request by request.
/// </summary>
public sealed class LedgerCatchUpTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Gateway_is_unaffected_while_postgres_then_admin_are_down_and_the_ledger_catches_up_request_by_request()
    {
        await using var postgres = await PostgresServer.StartAsync();
        await using var redis = await RedisServer.StartNewAsync();
        await using var provider = await FakeProvider.StartAsync();
        provider.RespondOpenAIText("hi", new OpenAIUsage(10, 1000));
        var database = await postgres.CreateDatabaseAsync("ledger_catch_up");
        var adminSettings = AdminAppFactory.SettingsFor(database, Tolerant(redis.ConnectionString));
        var admin = new AdminAppFactory(adminSettings);
        string key;
        using (var adminClient = admin.CreateAdminClient())
            key = (await adminClient.CreateKeyAsync(new { name = "catch-up", quota_usd = 10m, rpm_limit = 1000 })).GetProperty("key").GetString()!;

        await using var gateway = new GatewayFactory(GatewaySettings(provider, redis, "fail-closed"));
        using var client = gateway.CreateGatewayClient(key);
        var served = new List<Served>();
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var first = await ChatAsync(client);
            if (first.StatusCode == HttpStatusCode.OK) served.Add(ServedFrom(first));
            return first.StatusCode == HttpStatusCode.OK;
        }, Patience, "the key to work at the gateway");
        var db = (await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString)).GetDatabase();
        var sink = gateway.Service<RedisUsageSink>();

        // PostgreSQL away, Admin running: the gateway does not notice; usage piles up in the stream.
        await postgres.StopAsync();
        for (var i = 0; i < 4; i++)
        {
            using var response = await ChatAsync(client);
            served.Add(ServedFrom(response));
        }
        await AdminTestHelpers.EventuallyAsync(() => Task.FromResult(sink.Backlog == 0), Patience, "usage to reach the Redis stream");
        Assert.True((await LedgerRowsOrNullAsync(database)) is null, "PostgreSQL should be down");
        await postgres.RestartAsync();
        await AdminTestHelpers.EventuallyAsync(async () => (await LedgerAsync(database)).Count >= served.Count, Patience,
            "Admin to catch up once PostgreSQL is back");
        AssertSameRequests(Expected(served), await LedgerAsync(database));

        // Admin away: same story.
        await admin.DisposeAsync();
        for (var i = 0; i < 4; i++)
        {
            using var response = await ChatAsync(client);
            served.Add(ServedFrom(response));
        }
        // (Admin trims what it has written to the ledger, so the stream holds what waits for it.)
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            var waiting = await UsageStreamAsync(db);
            return served.TakeLast(4).All(s => waiting.ContainsKey(s.RequestId));
        }, Patience, "usage to wait in the Redis stream");
        Assert.Equal(served.Count - 4, (await LedgerAsync(database)).Count);
        await using var restarted = new AdminAppFactory(adminSettings);
        using var wake = restarted.CreateAdminClient(); // WebApplicationFactory starts Admin on first use
        await AdminTestHelpers.EventuallyAsync(async () => (await LedgerAsync(database)).Count >= served.Count, Patience,
            "a restarted Admin to catch up");
        AssertSameRequests(Expected(served), await LedgerAsync(database));
        Assert.Equal(served.Count, provider.CallCount);
    }

    private static async Task<int?> LedgerRowsOrNullAsync(string database)
    {
        try
        {
            return (await LedgerAsync(database)).Count;
        }
        catch (Npgsql.NpgsqlException)
        {
            return null;
        }
    }
}
