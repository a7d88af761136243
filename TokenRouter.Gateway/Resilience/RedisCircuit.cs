using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Resilience;

/// <summary>
/// Knows whether Redis is down, shared by the hot-path Redis users (key lookups, quota/RPM/TPM admissions): once an
/// outage is known, calls fail at once instead of each waiting for a timeout, and one call probes Redis again every
/// <see cref="RedisOutageOptions.ProbeInterval"/>. A dropped connection is known at once
/// (<see cref="IConnectionMultiplexer.IsConnected"/>); a Redis that hangs is found by a circuit breaker (half the
/// calls in 10 s failing with a <see cref="RedisException"/> or a timeout, at least two).
/// </summary>
/// <remarks>
/// The breaker is written out here rather than Polly's, which it replaced: every admission on Redis runs through it, and
/// Polly's circuit-breaker pipeline stacks six async state machines on a call that completes asynchronously — 2.5 KB a
/// request of the 28 KB the gateway allocated per request on Redis (EventPipe samples, README "Redis per request"). The
/// rules are Polly's advanced breaker's: failure ratio 0.5 over a 10 s window, minimum throughput 2, break for the probe
/// interval, then one probe at a time (half-open) that closes the circuit or opens it again.
/// </remarks>
public sealed partial class RedisCircuit
{
    private const int MinimumThroughput = 2;
    private static readonly TimeSpan SamplingDuration = TimeSpan.FromSeconds(10);

    private readonly IConnectionMultiplexer _redis;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisCircuit> _logger;
    private readonly TimeSpan _breakDuration;
    private readonly string _policy;
    private readonly Lock _gate = new();
    // Under _gate (_openUntil also read without it): the sampling window, and the break (0: closed).
    private long _windowEnds;
    private int _calls;
    private int _failures;
    private long _openUntil;
    private bool _probing;

    public RedisCircuit(IConnectionMultiplexer redis, IOptions<RedisOutageOptions> options, TimeProvider time,
        ILogger<RedisCircuit> logger, IMeterFactory? meterFactory = null)
    {
        _redis = redis;
        _time = time;
        _logger = logger;
        _breakDuration = options.Value.ProbeInterval;
        _policy = options.Value.Policy;
        if (meterFactory is not null)
        {
            meterFactory.Create(GatewayMetrics.MeterName).CreateObservableGauge("tokenrouter.redis.available",
                () => IsDown ? 0 : 1, "{state}", "1 while Redis answers the gateway's hot path, 0 during an outage (degraded mode).");
        }
    }

    /// <summary>Redis is known to be unreachable: callers should take their degraded path without calling it. False again
    /// once the break is over, so that a call can probe.</summary>
    public bool IsDown => !_redis.IsConnected || Now < Volatile.Read(ref _openUntil);

    private long Now => _time.GetUtcNow().UtcTicks;

    /// <summary>
    /// Runs one Redis call through the breaker. Throws <see cref="RedisException"/> (a
    /// <see cref="RedisConnectionException"/> without calling Redis when the outage is already known), a timeout too.
    /// </summary>
    public async ValueTask<TResult> ExecuteAsync<TResult, TState>(Func<TState, ValueTask<TResult>> call, TState state)
    {
        var probe = Enter();
        try
        {
            var result = await call(state);
            Succeeded(probe);
            return result;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            var failure = Failed(probe, ex);
            if (failure == ex) throw;
            throw failure;
        }
        catch
        {
            Abandoned(probe);
            throw;
        }
    }

    // For a caller on the hot path that awaits Redis itself (one async state machine less per call than ExecuteAsync):
    // Enter, then exactly one of Succeeded, Failed or Abandoned.

    /// <summary>
    /// Before a call: true when it is the probe of a circuit whose break is over. Throws a
    /// <see cref="RedisConnectionException"/> without calling Redis when the circuit is open or Redis is disconnected
    /// (StackExchange.Redis would queue the command until its timeout; the latter counts as a failure).
    /// </summary>
    public bool Enter()
    {
        var probe = EnterCircuit();
        if (_redis.IsConnected) return probe;
        var failure = new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is not connected.");
        Record(probe, failure);
        throw failure;
    }

    public void Succeeded(bool probe) => Record(probe, failure: null);

    /// <summary>
    /// The call failed with a <see cref="RedisException"/> or a timeout: counted, and returned as the
    /// <see cref="RedisException"/> callers take their degraded path on — what a Redis that hangs produces is
    /// StackExchange.Redis's RedisTimeoutException, a <see cref="TimeoutException"/>, which is wrapped.
    /// </summary>
    public RedisException Failed(bool probe, Exception ex)
    {
        var failure = ex as RedisException ?? new RedisException($"Redis did not answer in time: {ex.Message}", ex);
        Record(probe, failure);
        return failure;
    }

    /// <summary>The call failed for another reason (a bug, a cancellation): no verdict on Redis, but the probe slot is
    /// free again.</summary>
    public void Abandoned(bool probe)
    {
        if (probe) lock (_gate) _probing = false;
    }

    /// <summary>True when this call is the probe of a circuit whose break is over; throws when the circuit is open.</summary>
    private bool EnterCircuit()
    {
        if (Volatile.Read(ref _openUntil) == 0) return false;
        lock (_gate)
        {
            if (_openUntil == 0) return false;
            if (Now < _openUntil || _probing)
                throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is known to be unreachable; probing again shortly.");
            _probing = true;
            return true;
        }
    }

    private void Record(bool probe, RedisException? failure)
    {
        bool opened = false, closed = false;
        lock (_gate)
        {
            var now = Now;
            if (probe)
            {
                _probing = false;
                if (failure is null)
                {
                    Volatile.Write(ref _openUntil, 0);
                    StartWindowLocked(now);
                    closed = true;
                }
                else
                {
                    Volatile.Write(ref _openUntil, now + _breakDuration.Ticks);
                    opened = true;
                }
            }
            else if (_openUntil == 0)
            {
                if (now >= _windowEnds) StartWindowLocked(now);
                _calls++;
                if (failure is not null && ++_failures * 2 >= _calls && _calls >= MinimumThroughput)
                {
                    Volatile.Write(ref _openUntil, now + _breakDuration.Ticks);
                    opened = true;
                }
            }
        }
        if (opened) LogOpened(failure!.GetType().Name, _policy);
        if (closed) LogClosed();
    }

    private void StartWindowLocked(long now) => (_calls, _failures, _windowEnds) = (0, 0, now + SamplingDuration.Ticks);

    [LoggerMessage(Level = LogLevel.Error, Message = "Redis is unreachable ({Error}): the gateway runs degraded (known keys from the local cache, quotas and RPM/TPM per REDIS_OUTAGE_POLICY={Policy}, usage buffered)")]
    private partial void LogOpened(string error, string policy);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis answers again: leaving degraded mode")]
    private partial void LogClosed();
}
