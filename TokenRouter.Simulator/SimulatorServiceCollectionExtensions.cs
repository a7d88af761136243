using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using TokenRouter.Simulator;

namespace Microsoft.Extensions.DependencyInjection;

public static class SimulatorServiceCollectionExtensions
{
    /// <summary>Registers the built-in fake provider; map its endpoints with <c>MapSimulator</c>.</summary>
    public static IServiceCollection AddSimulator(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<SimulatorOptions>()
            .Bind(configuration.GetSection(SimulatorOptions.SectionName))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SimulatorOptions>, SimulatorOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<SimulatorStats>();
        services.TryAddSingleton(sp => new SimPrefixCache(
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<SimulatorOptions>>().Value.MaxCachedPrefixes));
        services.TryAddSingleton<SimulatorHandler>();
        return services;
    }
}
