using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Resilience;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Limits;

public static class LimitsServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="AdmissionController"/> with <c>Limits</c> options (validated at start-up). Per-key limits
    /// and quotas live in Redis when an <see cref="IConnectionMultiplexer"/> is registered (degrading per
    /// <see cref="RedisOutageOptions"/> while it is down), in this process otherwise.
    /// </summary>
    public static IServiceCollection AddGatewayLimits(this IServiceCollection services)
    {
        services.AddOptions<LimitsOptions>().BindConfiguration(LimitsOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LimitsOptions>, LimitsOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<GatewayMetrics>();
        services.TryAddSingleton<PriceTable>();
        services.TryAddSingleton<ConcurrencyLimiter>();
        services.TryAddSingleton<IInFlightRequests>(sp => sp.GetRequiredService<ConcurrencyLimiter>());
        services.AddOptions<RedisOutageOptions>().BindConfiguration(RedisOutageOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisOutageOptions>, RedisOutageOptionsValidator>());
        services.TryAddSingleton(sp => new RedisCircuit(sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOutageOptions>>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<RedisCircuit>>(), sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton<IKeyLimitStore>(sp => sp.GetService<IConnectionMultiplexer>() is { } redis
            ? new DegradableKeyLimitStore(
                new RedisKeyLimitStore(redis, sp.GetRequiredService<ILogger<RedisKeyLimitStore>>(), sp.GetRequiredService<TimeProvider>()),
                sp.GetRequiredService<RedisCircuit>(), sp.GetRequiredService<IOptionsMonitor<RedisOutageOptions>>(),
                sp.GetRequiredService<GatewayMetrics>(), sp.GetRequiredService<ILogger<DegradableKeyLimitStore>>())
            : new LocalKeyLimitStore());
        services.AddOptions<BudgetsOptions>().BindConfiguration(BudgetsOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BudgetsOptions>, BudgetsOptionsValidator>());
        services.TryAddSingleton(sp =>
        {
            BudgetPeriods.TryFindTimeZone(sp.GetRequiredService<IOptions<BudgetsOptions>>().Value.TimeZone, out var zone);
            return new BudgetPeriods(sp.GetRequiredService<TimeProvider>(), zone ?? TimeZoneInfo.Utc);
        });
        services.TryAddSingleton<AdmissionController>();
        return services;
    }
}
