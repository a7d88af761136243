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
        // Generated here, once per registration, so every options instance (the gateway's and the simulator's) agrees.
        var generatedKey = SimulatorKey.Generate();
        services.AddOptions<SimulatorOptions>()
            .Bind(configuration.GetSection(SimulatorOptions.SectionName))
            .PostConfigure(o =>
            {
                if (string.IsNullOrWhiteSpace(o.ApiKey)) o.ApiKey = generatedKey;
            })
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
