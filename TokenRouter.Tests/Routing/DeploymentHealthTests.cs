using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Tests.Routing;

public sealed class DeploymentHealthTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-06T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly RoutingOptions _options = new() { FailureThreshold = 3, Cooldown = TimeSpan.FromSeconds(30), MaxCooldown = TimeSpan.FromMinutes(5) };
    private readonly DeploymentHealth _health;

    public DeploymentHealthTests()
    {
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        var labels = new ModelLabels(new PriceTable(Options.Create(new PricingOptions())));
        _health = new DeploymentHealth(_time, new StaticMonitor(_options), new GatewayMetrics(meters, labels));
        _health.Register("openai", "d1");
    }

    [Fact]
    public void Failures_below_the_threshold_keep_a_deployment_available()
    {
        _health.Failed("openai", "d1", FailureKind.ServerError, null);
        _health.Failed("openai", "d1", FailureKind.Reset, null);

        Assert.True(_health.IsAvailable("d1"));
        Assert.Equal("degraded", Assert.Single(_health.Snapshot()).Health);
    }

    [Fact]
    public void The_threshold_cools_a_deployment_down_until_the_cooldown_ends_and_a_failed_probe_doubles_it()
    {
        for (var i = 0; i < 3; i++) _health.Failed("openai", "d1", FailureKind.Timeout, null);
        Assert.False(_health.IsAvailable("d1"));

        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.True(_health.IsAvailable("d1")); // probed back in

        var until = _health.Failed("openai", "d1", FailureKind.Timeout, null); // the probe failed
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(60), until);
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.False(_health.IsAvailable("d1"));
    }

    [Fact]
    public void A_success_resets_the_count()
    {
        _health.Failed("openai", "d1", FailureKind.ServerError, null);
        _health.Failed("openai", "d1", FailureKind.ServerError, null);
        _health.Succeeded("d1");
        _health.Failed("openai", "d1", FailureKind.ServerError, null);

        Assert.True(_health.IsAvailable("d1"));
        Assert.Equal("degraded", Assert.Single(_health.Snapshot()).Health);
    }

    [Fact]
    public void A_revoked_key_is_cooled_down_at_once_for_the_longest_cooldown()
    {
        var until = _health.Failed("openai", "d1", FailureKind.Auth, null);

        Assert.Equal(_time.GetUtcNow() + _options.MaxCooldown, until);
        Assert.False(_health.IsAvailable("d1"));
    }

    [Fact]
    public void A_429_with_Retry_After_cools_down_for_exactly_that_long()
    {
        _health.Failed("openai", "d1", FailureKind.RateLimited, TimeSpan.FromSeconds(7));

        _time.Advance(TimeSpan.FromSeconds(6));
        Assert.False(_health.IsAvailable("d1"));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(_health.IsAvailable("d1"));
    }

    [Fact]
    public void A_cooldown_from_another_replica_applies_to_known_deployments_only()
    {
        var until = _time.GetUtcNow().AddSeconds(20).ToUnixTimeMilliseconds();
        _health.ApplyShared("d1", until);
        _health.ApplyShared("someone-elses", until);

        Assert.False(_health.IsAvailable("d1"));
        Assert.True(_health.IsAvailable("someone-elses"));
        Assert.Single(_health.Snapshot());
    }

    [Fact]
    public void Starting_a_cooldown_is_announced_for_other_replicas()
    {
        var announced = new List<(string, DateTimeOffset)>();
        _health.CooledDown += (id, until) => announced.Add((id, until));

        _health.Failed("openai", "d1", FailureKind.Auth, null);

        Assert.Equal([("d1", _time.GetUtcNow() + _options.MaxCooldown)], announced);
    }

    private sealed class StaticMonitor(RoutingOptions value) : IOptionsMonitor<RoutingOptions>
    {
        public RoutingOptions CurrentValue => value;
        public RoutingOptions Get(string? name) => value;
        public IDisposable? OnChange(Action<RoutingOptions, string?> listener) => null;
    }
}
