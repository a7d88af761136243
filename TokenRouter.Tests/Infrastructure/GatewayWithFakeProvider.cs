namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// The setup most functional tests share: one fake provider over real HTTP and a gateway in-process on Kestrel with
/// every provider pointed at it, started before each test and stopped after it.
/// </summary>
public abstract class GatewayWithFakeProvider : IAsyncLifetime
{
    protected FakeProvider Provider { get; private set; } = null!;
    protected GatewayFactory Gateway { get; private set; } = null!;

    /// <summary>Changes the gateway's settings (every provider already at the fake one) before it starts.</summary>
    protected virtual void Configure(Dictionary<string, string?> settings)
    {
    }

    public async Task InitializeAsync()
    {
        Provider = await FakeProvider.StartAsync();
        var settings = GatewayFactory.ProvidersAt(Provider);
        Configure(settings);
        Gateway = new GatewayFactory(settings);
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Provider.DisposeAsync();
    }
}
