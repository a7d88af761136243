using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace TokenRouter.Gateway.Routing;

public static class CacheAwareBalancingServiceCollectionExtensions
{
    /// <summary>
    /// Makes <see cref="CacheAwareBalancer"/> the <see cref="IDeploymentBalancer"/>, whatever was registered before or is
    /// registered after with TryAdd (the plain default balancer). Settings from <see cref="CacheAwareBalancingOptions.SectionName"/>;
    /// pins are shared through the <see cref="IConnectionMultiplexer"/> when one is registered.
    /// </summary>
    public static IServiceCollection AddCacheAwareBalancing(this IServiceCollection services)
    {
        services.AddOptions<CacheAwareBalancingOptions>()
            .BindConfiguration(CacheAwareBalancingOptions.SectionName)
            .Validate(o => !o.Validate().Any(), "Invalid Routing:CacheAwareBalancing settings (see CacheAwareBalancingOptions).")
            .ValidateOnStart();
        services.RemoveAll<IDeploymentBalancer>();
        services.AddSingleton<IDeploymentBalancer>(sp => new CacheAwareBalancer(
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetRequiredService<IOptions<CacheAwareBalancingOptions>>().Value,
            sp.GetService<IConnectionMultiplexer>(),
            sp.GetService<ILogger<CacheAwareBalancer>>()));
        return services;
    }
}
