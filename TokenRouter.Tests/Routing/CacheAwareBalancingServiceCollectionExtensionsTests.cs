using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TokenRouter.Gateway.Routing;

namespace TokenRouter.Tests.Routing;

public sealed class CacheAwareBalancingServiceCollectionExtensionsTests
{
    private sealed class DefaultBalancer : IDeploymentBalancer
    {
        public ValueTask<int[]> OrderAsync(RoutingRequest request, IReadOnlyList<DeploymentInfo> deployments, Func<int, bool> isAvailable,
            CancellationToken cancellationToken) => new([.. Enumerable.Range(0, deployments.Count)]);

        public ValueTask ServedAsync(RoutingRequest request, DeploymentInfo deployment, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private static ServiceCollection Services(Dictionary<string, string?>? settings = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings ?? []).Build());
        return services;
    }

    [Fact]
    public void The_cache_aware_balancer_wins_over_a_default_registered_before_it()
    {
        var services = Services();
        services.TryAddSingleton<IDeploymentBalancer, DefaultBalancer>();
        services.AddCacheAwareBalancing();

        using var provider = services.BuildServiceProvider();
        Assert.IsType<CacheAwareBalancer>(provider.GetRequiredService<IDeploymentBalancer>());
    }

    [Fact]
    public void The_cache_aware_balancer_wins_over_a_default_registered_after_it_with_TryAdd()
    {
        var services = Services();
        services.AddCacheAwareBalancing();
        services.TryAddSingleton<IDeploymentBalancer, DefaultBalancer>();

        using var provider = services.BuildServiceProvider();
        Assert.IsType<CacheAwareBalancer>(provider.GetRequiredService<IDeploymentBalancer>());
    }

    [Fact]
    public void Invalid_settings_are_refused_at_start()
    {
        var services = Services(new() { ["Routing:CacheAwareBalancing:MaxPins"] = "0" });
        services.AddCacheAwareBalancing();

        using var provider = services.BuildServiceProvider();
        var error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(provider.GetRequiredService<IDeploymentBalancer>);
        Assert.Contains("CacheAwareBalancing", error.Message, StringComparison.Ordinal);
    }
}
