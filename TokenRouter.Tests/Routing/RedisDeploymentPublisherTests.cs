using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TokenRouter.Admin.Console;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>
/// The gateway's side of the deployments contract (<see cref="RedisDeploymentPublisher"/>) and Admin's
/// (<see cref="DeploymentsView"/>) against a real Redis: what one writes the other reads, with health, without secrets,
/// and a deployment no gateway publishes any more leaves the list.
/// </summary>
public sealed class RedisDeploymentPublisherTests : IAsyncLifetime
{
    private const int Database = 11;
    private static readonly DeploymentDescription East = new("openai-east", "openai", 3, "org-a", 500, 200_000);
    private static readonly DeploymentDescription West = new("openai-west", "openai", 1, null, null, null);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 3, 0, 0, TimeSpan.Zero));
    private ServiceProvider _services = null!;
    private ConnectionMultiplexer _redis = null!;
    private DeploymentHealth _health = null!;
    private RedisDeploymentPublisher _publisher = null!;

    public async Task InitializeAsync()
    {
        var server = await RedisServer.GetSharedAsync();
        _redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionStringForDatabase(Database));
        await _redis.GetDatabase().KeyDeleteAsync(RedisContract.DeploymentsHash);
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new GatewayMetrics(_services.GetRequiredService<IMeterFactory>(), new ModelLabels(new PriceTable(Options.Create(new PricingOptions()))));
        _health = new DeploymentHealth(_time, new StaticOptions(new RoutingOptions()), metrics);
        _health.Register("openai", East.Id);
        _health.Register("openai", West.Id);
        _publisher = new RedisDeploymentPublisher(_redis, _health, [East, West], _time, NullLogger<RedisDeploymentPublisher>.Instance)
        {
            Replica = "gateway-a/1",
        };
    }

    public async Task DisposeAsync()
    {
        await _redis.GetDatabase().KeyDeleteAsync(RedisContract.DeploymentsHash);
        await _redis.DisposeAsync();
        await _services.DisposeAsync();
    }

    [Fact]
    public async Task Publishes_every_deployment_with_its_settings_and_health_under_an_expiring_hash()
    {
        await _publisher.PublishAsync();

        var db = _redis.GetDatabase();
        var fields = (await db.HashGetAllAsync(RedisContract.DeploymentsHash)).ToDictionary(f => (string)f.Name!, f => (string)f.Value!);
        Assert.Equal(["openai-east", "openai-west"], fields.Keys.Order(StringComparer.Ordinal));
        var east = RedisContract.PublishedDeployment.FromJson(fields["openai-east"]);
        Assert.Equal(new RedisContract.PublishedDeployment("openai", 3, "org-a", 500, 200_000, "healthy", null, 0, null, "gateway-a/1",
            _time.GetUtcNow()), east);
        Assert.Contains("\"cache_group\":\"org-a\"", fields["openai-east"], StringComparison.Ordinal);
        Assert.Contains("\"seen_at\":", fields["openai-east"], StringComparison.Ordinal);
        var ttl = await db.KeyTimeToLiveAsync(RedisContract.DeploymentsHash);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(1), RedisContract.DeploymentsRetention);
    }

    [Fact]
    public async Task A_deployment_that_cooled_down_is_published_as_such_and_read_back_by_Admin()
    {
        var until = _health.Failed("openai", West.Id, FailureKind.Auth, retryAfter: null);
        Assert.NotNull(until);
        await _publisher.PublishAsync();

        var view = new DeploymentsView(_redis, _time);
        var snapshot = await view.ReadAsync();
        Assert.False(snapshot.RedisUnavailable);
        Assert.Equal(["openai-east", "openai-west"], snapshot.Rows.Select(r => r.Id));
        var west = snapshot.Rows[1];
        Assert.Equal("cooling_down", west.Entry.Health);
        Assert.Equal(until, west.Entry.CooldownUntil);
        Assert.Equal("auth", west.Entry.LastFailure);
        Assert.Equal(1, west.Entry.ConsecutiveFailures);
        Assert.True(west.IsCoolingDown(_time.GetUtcNow()));
        Assert.False(snapshot.Rows[0].IsCoolingDown(_time.GetUtcNow()));
        Assert.Equal("healthy", snapshot.Rows[0].Entry.Health);

        // Once the cool-down is over and a request succeeded there, the next publish says so.
        _time.Advance(until.Value - _time.GetUtcNow() + TimeSpan.FromSeconds(1));
        _health.Succeeded(West.Id);
        await _publisher.PublishAsync();
        Assert.All((await view.ReadAsync()).Rows, r => Assert.Equal("healthy", r.Entry.Health));
    }

    [Fact]
    public async Task Admin_leaves_out_deployments_no_gateway_published_lately_and_entries_it_cannot_read()
    {
        await _publisher.PublishAsync();
        var db = _redis.GetDatabase();
        await db.HashSetAsync(RedisContract.DeploymentsHash, "from-another-version", "not json");
        // A replica that no longer has West publishes East alone, a retention period later.
        _time.Advance(RedisContract.DeploymentsRetention + TimeSpan.FromSeconds(1));
        var later = new RedisDeploymentPublisher(_redis, _health, [East], _time, NullLogger<RedisDeploymentPublisher>.Instance);
        await later.PublishAsync();

        var snapshot = await new DeploymentsView(_redis, _time).ReadAsync();
        Assert.Equal(["openai-east"], snapshot.Rows.Select(r => r.Id));
        Assert.Equal(_time.GetUtcNow(), snapshot.Rows[0].Entry.SeenAt);
    }

    [Fact]
    public async Task Nothing_published_reads_as_an_empty_list()
    {
        var snapshot = await new DeploymentsView(_redis, _time).ReadAsync();
        Assert.Empty(snapshot.Rows);
        Assert.False(snapshot.RedisUnavailable);
    }

    private sealed class StaticOptions(RoutingOptions value) : IOptionsMonitor<RoutingOptions>
    {
        public RoutingOptions CurrentValue => value;
        public RoutingOptions Get(string? name) => value;
        public IDisposable? OnChange(Action<RoutingOptions, string?> listener) => null;
    }
}
