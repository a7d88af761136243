using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>
/// What the tests of "done in Admin, seen at the gateway" share: Admin on its own database of the shared real PostgreSQL,
/// a gateway with a fake provider over HTTP, both on one fresh real Redis.
/// </summary>
public abstract class AdminWithGateway(string databaseName) : IAsyncLifetime
{
    protected PostgresServer Postgres { get; private set; } = null!;
    protected RedisServer Redis { get; private set; } = null!;
    protected FakeProvider Provider { get; private set; } = null!;
    /// <summary>Admin's connection string.</summary>
    protected string Database { get; private set; } = null!;
    protected AdminAppFactory AdminApp { get; private set; } = null!;
    protected GatewayFactory Gateway { get; private set; } = null!;

    /// <summary>Adds to the gateway's settings (already: the fake provider's base URLs and Redis).</summary>
    protected virtual void ConfigureGateway(Dictionary<string, string?> settings)
    {
    }

    public async Task InitializeAsync()
    {
        Postgres = await PostgresServer.GetSharedAsync();
        Redis = await RedisServer.StartNewAsync();
        Provider = await FakeProvider.StartAsync();
        Database = await Postgres.CreateDatabaseAsync(databaseName);
        AdminApp = new AdminAppFactory(AdminAppFactory.SettingsFor(Database, Redis.ConnectionString));
        var settings = GatewayFactory.ProvidersAt(Provider);
        settings["ConnectionStrings:redis"] = Redis.ConnectionString;
        ConfigureGateway(settings);
        Gateway = new GatewayFactory(settings);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await AdminApp.DisposeAsync();
        await Provider.DisposeAsync();
        await Redis.DisposeAsync();
    }
}
