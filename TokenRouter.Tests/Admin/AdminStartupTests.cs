using System.Net;
using Npgsql;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

/// <summary>
/// What Admin does when it starts: migrate, republish keys, and cope with Redis or Postgres being away.
/// Each test has its own database, and the tests that flush or stop Redis have their own Redis server.
/// </summary>
public sealed class AdminStartupTests
{
    [Fact]
    public async Task Migrations_are_applied_at_startup()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        var redis = await RedisServer.GetSharedAsync();
        var database = await postgres.CreateDatabaseAsync("admin_migrations");
        await using var factory = new AdminAppFactory(AdminAppFactory.SettingsFor(database, redis.ConnectionString));

        using var client = factory.CreateAdminClient(); // starting the host runs the migrations before it serves

        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var tables = new NpgsqlCommand(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name", connection);
        var names = new List<string>();
        await using (var reader = await tables.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                names.Add(reader.GetString(0));
            }
        }
        Assert.Equal(["__EFMigrationsHistory", "api_keys", "budget_alerts", "model_prices", "provider_deployments", "teams",
            "usage_dead_letters", "usage_records", "webhook_deliveries", "webhooks"],
            names.Order(StringComparer.Ordinal));

        await using var history = new NpgsqlCommand("SELECT \"MigrationId\" FROM \"__EFMigrationsHistory\" ORDER BY 1", connection);
        var applied = new List<string>();
        await using (var reader = await history.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                applied.Add(reader.GetString(0));
            }
        }
        Assert.Collection(applied, m => Assert.EndsWith("_Initial", m), m => Assert.EndsWith("_Ledger", m), m => Assert.EndsWith("_Teams", m),
            m => Assert.EndsWith("_ProviderDeployments", m), m => Assert.EndsWith("_UsageAttribution", m),
            m => Assert.EndsWith("_Webhooks", m), m => Assert.EndsWith("_DeploymentMaxConcurrency", m));
        using var response = await client.GetAsync("/admin/api-keys");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Startup_republishes_active_keys_after_redis_flushall_and_drops_revoked_ones()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        await using var redis = await RedisServer.StartNewAsync();
        var database = await postgres.CreateDatabaseAsync("admin_republish");
        var settings = AdminAppFactory.SettingsFor(database, redis.ConnectionString);

        string activeKey, revokedKey;
        await using (var first = new AdminAppFactory(settings))
        {
            using var client = first.CreateAdminClient();
            activeKey = (await client.CreateKeyAsync(new { name = "survivor", quota_usd = 3, rpm_limit = 10 })).GetProperty("key").GetString()!;
            var revoked = await client.CreateKeyAsync(new { name = "gone", quota_usd = 3 });
            revokedKey = revoked.GetProperty("key").GetString()!;
            using var delete = await client.DeleteAsync($"/admin/api-keys/{revoked.GetProperty("id").GetGuid()}");
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        await redis.FlushAllAsync();
        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = probe.GetDatabase();
        // A stale snapshot of the revoked key (as if its deletion had been lost) must not survive a start either.
        await db.HashSetAsync(RedisKeyFor(revokedKey), [new HashEntry("id", "stale"), new HashEntry("enabled", "1")]);

        await using var second = new AdminAppFactory(settings);
        using var _ = second.CreateAdminClient(); // start-up reconciles before serving

        var survivor = await db.HashGetAllAsync(RedisKeyFor(activeKey));
        Assert.Equal("survivor", survivor.Single(e => e.Name == "name").Value.ToString());
        Assert.Equal("10", survivor.Single(e => e.Name == "rpm_limit").Value.ToString());
        Assert.False(await db.KeyExistsAsync(RedisKeyFor(revokedKey)));
    }

    [Fact]
    public async Task Key_created_while_redis_is_down_reaches_redis_when_it_returns()
    {
        var postgres = await PostgresServer.GetSharedAsync();
        await using var redis = await RedisServer.StartNewAsync();
        var database = await postgres.CreateDatabaseAsync("admin_redis_down");
        await using var factory = new AdminAppFactory(AdminAppFactory.SettingsFor(database, redis.ConnectionString));
        using var client = factory.CreateAdminClient();

        await redis.StopAsync();
        var created = await client.CreateKeyAsync(new { name = "during-outage", quota_usd = 2 }); // the DB is the truth
        var key = created.GetProperty("key").GetString()!;
        var listed = await client.GetJsonAsync($"/admin/api-keys/{created.GetProperty("id").GetGuid()}");
        Assert.Equal("during-outage", listed.GetProperty("name").GetString());
        await redis.StartAsync();

        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        await EventuallyAsync(
            () => probe.GetDatabase().KeyExistsAsync(RedisKeyFor(key)),
            TimeSpan.FromSeconds(30),
            "the key written during the Redis outage was never published after Redis came back");
    }

    [Fact]
    public async Task Startup_fails_with_a_clear_message_when_postgres_does_not_answer()
    {
        var redis = await RedisServer.GetSharedAsync();
        var nobodyListens = $"Host=127.0.0.1;Port={LocalServerProcess.FreeTcpPort()};Username=postgres;Database=nowhere";
        var settings = AdminAppFactory.SettingsFor(nobodyListens, redis.ConnectionString);
        settings["Admin:Startup:DatabaseWaitTimeout"] = "00:00:02";
        settings["Admin:Startup:DatabaseRetryDelay"] = "00:00:00.250";
        await using var factory = new AdminAppFactory(settings);

        var error = Assert.Throws<InvalidOperationException>(() => factory.CreateClient());

        Assert.Contains("did not answer within", error.Message);
        Assert.Contains("DATABASE_URL", error.Message);
    }
}
