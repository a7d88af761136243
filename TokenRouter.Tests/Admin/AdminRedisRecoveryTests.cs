using System.Net;
using System.Net.Http.Json;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

/// <summary>
/// What Admin gives back to a Redis that lost its data (FLUSHALL, or a restart without persistence): keys, price
/// overrides and quota spend. Each test runs its own Redis server, since it flushes or restarts it.
/// </summary>
public sealed class AdminRedisRecoveryTests
{
    [Fact]
    public async Task Startup_after_flushall_seeds_quota_spend_from_the_ledger_without_overwriting_newer_gateway_spend()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        await using var redis = await RedisServer.StartNewAsync();
        var database = await postgres.CreateDatabaseAsync("admin_spend_seed");
        var settings = AdminAppFactory.SettingsFor(database, redis.ConnectionString);

        Guid seeded, booked, unlimited, revoked;
        await using (var first = new AdminAppFactory(settings))
        {
            using var client = first.CreateAdminClient();
            seeded = (await client.CreateKeyAsync(new { name = "seeded", quota_usd = 10 })).GetProperty("id").GetGuid();
            booked = (await client.CreateKeyAsync(new { name = "booked", quota_usd = 10 })).GetProperty("id").GetGuid();
            unlimited = (await client.CreateKeyAsync(new { name = "unlimited" })).GetProperty("id").GetGuid();
            revoked = (await client.CreateKeyAsync(new { name = "revoked", quota_usd = 10 })).GetProperty("id").GetGuid();
            using var revoke = await client.DeleteAsync($"/admin/api-keys/{revoked}");
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        }
        await InsertUsageAsync(database, "s-1", seeded, 0.1m);
        await InsertUsageAsync(database, "s-2", seeded, 0.2000000004m); // rounds to the nearest nano-USD
        await InsertUsageAsync(database, "s-3", seeded, null);
        await InsertUsageAsync(database, "b-1", booked, 0.4m);
        await InsertUsageAsync(database, "u-1", unlimited, 1m);
        await InsertUsageAsync(database, "v-1", revoked, 1m);

        await redis.FlushAllAsync();
        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = probe.GetDatabase();
        // A gateway that has already booked spend since the flush: its value is newer than anything in the ledger.
        await db.HashSetAsync(QuotaKey(booked), "spent", 999);

        await using var second = new AdminAppFactory(settings);
        using var _ = second.CreateAdminClient(); // start-up seeds before serving

        Assert.Equal("300000000", (await db.HashGetAsync(QuotaKey(seeded), "spent")).ToString());
        Assert.Equal("999", (await db.HashGetAsync(QuotaKey(booked), "spent")).ToString());
        Assert.False(await db.KeyExistsAsync(QuotaKey(unlimited))); // no quota: gateways track no spend
        Assert.False(await db.KeyExistsAsync(QuotaKey(revoked)));
    }

    [Fact]
    public async Task Startup_after_flushall_republishes_price_overrides_and_drops_stale_ones()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        await using var redis = await RedisServer.StartNewAsync();
        var database = await postgres.CreateDatabaseAsync("admin_price_republish");
        var settings = AdminAppFactory.SettingsFor(database, redis.ConnectionString);

        await using (var first = new AdminAppFactory(settings))
        {
            using var client = first.CreateAdminClient();
            foreach (var model in new[] { "kept-a", "kept-b" })
            {
                using var put = await client.PutAsJsonAsync($"/admin/pricing/{model}",
                    new { input = 1, cached_input = 0.1, cache_write_5m = 1.25, cache_write_1h = 2, output = 4 });
                Assert.Equal(HttpStatusCode.Created, put.StatusCode);
            }
        }

        await redis.FlushAllAsync();
        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = probe.GetDatabase();
        // An override deleted in Postgres whose Redis delete was lost.
        await db.HashSetAsync(PricesHash, "stale-model", """{"input":9,"output":9}""");

        await using var second = new AdminAppFactory(settings);
        using var _ = second.CreateAdminClient();

        var fields = (await db.HashGetAllAsync(PricesHash)).ToDictionary(e => e.Name.ToString(), e => e.Value.ToString());
        Assert.Equal(["kept-a", "kept-b"], fields.Keys.Order().ToArray());
        Assert.Equal("""{"input":1,"cached_input":0.1,"cache_write_5m":1.25,"cache_write_1h":2,"output":4}""", fields["kept-a"]);
    }

    [Fact]
    public async Task Redis_restarting_empty_while_admin_runs_gets_keys_prices_and_quota_spend_back()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        await using var redis = await RedisServer.StartNewAsync();
        var database = await postgres.CreateDatabaseAsync("admin_redis_restart");
        await using var factory = new AdminAppFactory(AdminAppFactory.SettingsFor(database, redis.ConnectionString));
        using var client = factory.CreateAdminClient();
        var created = await client.CreateKeyAsync(new { name = "survives", quota_usd = 5 });
        var id = created.GetProperty("id").GetGuid();
        var key = created.GetProperty("key").GetString()!;
        using (var put = await client.PutAsJsonAsync("/admin/pricing/restart-model",
                   new { input = 1, cached_input = 0.1, cache_write_5m = 0, cache_write_1h = 0, output = 2 }))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }
        await InsertUsageAsync(database, "restart-1", id, 0.75m);

        await redis.StopAsync();
        await redis.StartAsync(); // no persistence: it comes back empty

        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = probe.GetDatabase();
        await EventuallyAsync(async () =>
                await db.KeyExistsAsync(RedisKeyFor(key)) &&
                await db.HashExistsAsync(PricesHash, "restart-model") &&
                (await db.HashGetAsync(QuotaKey(id), "spent")).ToString() == "750000000",
            TimeSpan.FromSeconds(30), "the key, the price override and the quota spend to be back in Redis");
    }
}
