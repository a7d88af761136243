using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Admin;

/// <summary>
/// One Admin app per test class, on the run's shared PostgreSQL (a fresh database of its own) and shared Redis.
/// Each fixture gets a Redis database index of its own (1–15; 0 is left to the gateway tests): Admin writes
/// process-wide keys (the price overrides hash, the usage stream) that another Admin's start-up would otherwise
/// reconcile away.
/// </summary>
public sealed class AdminAppFixture : IAsyncLifetime
{
    private static int s_redisDatabase;

    public PostgresServer Postgres { get; private set; } = null!;
    public RedisServer Redis { get; private set; } = null!;

    /// <summary>The shared Redis, with this fixture's database selected by default.</summary>
    public string RedisConnectionString { get; private set; } = null!;
    public string DatabaseConnectionString { get; private set; } = null!;
    public AdminAppFactory Factory { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public ConnectionMultiplexer RedisClient { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Postgres = await PostgresServer.GetSharedAsync();
        Redis = await RedisServer.GetSharedAsync();
        DatabaseConnectionString = await Postgres.CreateDatabaseAsync("admin");
        RedisConnectionString = Redis.ConnectionStringForDatabase(Interlocked.Increment(ref s_redisDatabase) % 15 + 1);
        Factory = new AdminAppFactory(AdminAppFactory.SettingsFor(DatabaseConnectionString, RedisConnectionString));
        Client = Factory.CreateAdminClient();
        RedisClient = await ConnectionMultiplexer.ConnectAsync(RedisConnectionString);
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (RedisClient is not null)
        {
            await RedisClient.DisposeAsync();
        }
        if (Factory is not null)
        {
            await Factory.DisposeAsync();
        }
    }
}
