using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Limits;

namespace TokenRouter.Tests.Limits;

/// <summary>
/// One gateway replica's limits, composed the way the gateway composes them (<c>AddGatewayLimits</c> over
/// configuration), against a real Redis when a connection string is given, in-process otherwise.
/// </summary>
internal sealed class LimitsHost : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly ConnectionMultiplexer? _redis;

    private LimitsHost(ServiceProvider services, ConnectionMultiplexer? redis)
    {
        _services = services;
        _redis = redis;
    }

    public AdmissionController Controller => _services.GetRequiredService<AdmissionController>();

    public IKeyLimitStore Store => _services.GetRequiredService<IKeyLimitStore>();

    public static async Task<LimitsHost> StartAsync(string? redisConnectionString, IDictionary<string, string?>? settings = null,
        TimeProvider? time = null)
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>());
        Gateway.Configuration.SeedConfigurationAliases.Apply(configuration);
        return await StartAsync(redisConnectionString, configuration, time);
    }

    public static async Task<LimitsHost> StartAsync(string? redisConnectionString, IConfiguration configuration, TimeProvider? time)
    {
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        services.AddLogging();
        services.AddMetrics();
        if (time is not null) services.AddSingleton(time);
        ConnectionMultiplexer? redis = null;
        if (redisConnectionString is not null)
        {
            redis = await ConnectionMultiplexer.ConnectAsync(redisConnectionString);
            services.AddSingleton<IConnectionMultiplexer>(redis);
        }
        services.AddSingleton<Gateway.Accounting.PriceTable>();
        services.AddSingleton<Gateway.Telemetry.ModelLabels>();
        services.AddGatewayLimits();
        return new LimitsHost(services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true }), redis);
    }

    public T Service<T>() where T : notnull => _services.GetRequiredService<T>();

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        if (_redis is not null) await _redis.DisposeAsync();
    }
}

/// <summary>A clock the test sets by hand: rate windows are fixed minutes, so tests pin the time mid-minute.</summary>
internal sealed class LimitsClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;

    /// <summary>30 s into a minute: a burst of admissions cannot straddle a window boundary.</summary>
    public static LimitsClock MidMinute() => new(new DateTimeOffset(2030, 1, 1, 12, 0, 30, TimeSpan.Zero));
}

internal static class Admit
{
    public static ClientIdentity Key(decimal? quotaUsd = null, int? rpm = null, int? tpm = null) =>
        new("key-" + Guid.NewGuid().ToString("N"), "test", new string('0', 64), quotaUsd, rpm, tpm);

    /// <summary>Runs an admission and returns it, or the <see cref="ApiError"/> it was refused with.</summary>
    public static async Task<(Admission? Admission, ApiError? Error)> TryAsync(Func<ValueTask<Admission>> admit)
    {
        try
        {
            return (await admit(), null);
        }
        catch (ApiError error)
        {
            return (null, error);
        }
    }
}
