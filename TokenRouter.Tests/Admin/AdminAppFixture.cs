using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Admin;

/// <summary>
/// One Admin app per test class, on the run's shared PostgreSQL (a fresh database of its own) and shared Redis.
/// Redis isolation comes from the keys themselves: every key hash is of a fresh random key.
/// </summary>
public sealed class AdminAppFixture : IAsyncLifetime
{
    public PostgresServer Postgres { get; private set; } = null!;
    public RedisServer Redis { get; private set; } = null!;
    public string DatabaseConnectionString { get; private set; } = null!;
    public AdminAppFactory Factory { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public ConnectionMultiplexer RedisClient { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Postgres = await PostgresServer.GetSharedAsync();
        Redis = await RedisServer.GetSharedAsync();
        DatabaseConnectionString = await Postgres.CreateDatabaseAsync("admin");
        Factory = new AdminAppFactory(AdminAppFactory.SettingsFor(DatabaseConnectionString, Redis.ConnectionString));
        Client = Factory.CreateAdminClient();
        RedisClient = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString);
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
