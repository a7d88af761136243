using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using StackExchange.Redis;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Resilience;

/// <summary>
/// Knows whether Redis is down, shared by the hot-path Redis users (key lookups, quota/RPM/TPM admissions): once an
/// outage is known, calls fail at once instead of each waiting for a timeout, and one call probes Redis again every
/// <see cref="RedisOutageOptions.ProbeInterval"/>. A dropped connection is known at once
/// (<see cref="IConnectionMultiplexer.IsConnected"/>); a Redis that hangs is found by Polly's circuit breaker (half the
/// calls in 10 s failing, at least two).
/// </summary>
public sealed partial class RedisCircuit
{
    private readonly IConnectionMultiplexer _redis;
    private readonly ILogger<RedisCircuit> _logger;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly ResiliencePipeline _pipeline;

    public RedisCircuit(IConnectionMultiplexer redis, IOptions<RedisOutageOptions> options, TimeProvider time,
        ILogger<RedisCircuit> logger, IMeterFactory? meterFactory = null)
    {
        _redis = redis;
        _logger = logger;
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<RedisException>(),
                FailureRatio = 0.5,
                MinimumThroughput = 2,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = options.Value.ProbeInterval,
                StateProvider = _state,
                OnOpened = args =>
                {
                    LogOpened(args.Outcome.Exception?.GetType().Name ?? "unknown", options.Value.Policy);
                    return default;
                },
                OnClosed = _ =>
                {
                    LogClosed();
                    return default;
                },
            })
            .Build();
        if (meterFactory is not null)
        {
            meterFactory.Create(GatewayMetrics.MeterName).CreateObservableGauge("tokenrouter.redis.available",
                () => IsDown ? 0 : 1, "{state}", "1 while Redis answers the gateway's hot path, 0 during an outage (degraded mode).");
        }
    }

    /// <summary>Redis is known to be unreachable: callers should take their degraded path without calling it.</summary>
    public bool IsDown => !_redis.IsConnected || _state.CircuitState is CircuitState.Open or CircuitState.Isolated;

    /// <summary>
    /// Runs one Redis call through the breaker. Throws <see cref="RedisException"/> (a
    /// <see cref="RedisConnectionException"/> without calling Redis when the outage is already known).
    /// </summary>
    public async ValueTask<TResult> ExecuteAsync<TResult, TState>(Func<TState, ValueTask<TResult>> call, TState state)
    {
        try
        {
            return await _pipeline.ExecuteAsync(static (s, _) =>
            {
                // Disconnected: StackExchange.Redis would queue the command until its timeout; fail now instead.
                if (!s.Redis.IsConnected)
                    throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is not connected.");
                return s.Call(s.State);
            }, (Redis: _redis, Call: call, State: state));
        }
        catch (BrokenCircuitException e)
        {
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is known to be unreachable; probing again shortly.", e);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Redis is unreachable ({Error}): the gateway runs degraded (known keys from the local cache, quotas and RPM/TPM per REDIS_OUTAGE_POLICY={Policy}, usage buffered)")]
    private partial void LogOpened(string error, string policy);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis answers again: leaving degraded mode")]
    private partial void LogClosed();
}
