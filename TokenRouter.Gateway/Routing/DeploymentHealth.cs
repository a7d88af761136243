using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// Which deployments are cooling down. A deployment that keeps failing (<see cref="RoutingOptions.FailureThreshold"/>
/// in a row), answers 401/403, or 429 with <c>Retry-After</c>, is taken out until a deadline; once it passes, the next
/// request probes it: a success puts it back, a failure cools it again for twice as long (up to
/// <see cref="RoutingOptions.MaxCooldown"/>). Read on every request without locks or I/O; other replicas' cool-downs
/// arrive through <see cref="ApplyShared"/> (<see cref="RedisDeploymentCooldowns"/>).
/// </summary>
public sealed class DeploymentHealth(TimeProvider time, IOptionsMonitor<RoutingOptions> options, GatewayMetrics metrics)
{
    private sealed class State(string provider)
    {
        public readonly string Provider = provider;
        public long CooledUntilMs;
        public int Failures;
        public int Cooldowns;
        public string? LastFailure;
        public readonly Lock Gate = new();
    }

    private readonly ConcurrentDictionary<string, State> _states = new(StringComparer.Ordinal);

    /// <summary>Raised when this replica starts a cool-down (deployment id, until): shared with other replicas.</summary>
    public event Action<string, DateTimeOffset>? CooledDown;

    private long NowMs => time.GetUtcNow().ToUnixTimeMilliseconds();

    public bool IsAvailable(string deploymentId) =>
        !_states.TryGetValue(deploymentId, out var s) || Volatile.Read(ref s.CooledUntilMs) <= NowMs;

    /// <summary>Makes a deployment known (listed with its health before it ever served).</summary>
    public void Register(string provider, string deploymentId) => _states.GetOrAdd(deploymentId, static (_, p) => new State(p), provider);

    public void Succeeded(string deploymentId)
    {
        if (!_states.TryGetValue(deploymentId, out var s) || (s.Failures == 0 && s.Cooldowns == 0)) return;
        lock (s.Gate)
        {
            s.Failures = 0;
            s.Cooldowns = 0;
        }
    }

    /// <summary>Counts a failure; returns the end of the cool-down it started, if it started one.</summary>
    public DateTimeOffset? Failed(string provider, string deploymentId, FailureKind kind, TimeSpan? retryAfter)
    {
        var o = options.CurrentValue;
        var s = _states.GetOrAdd(deploymentId, static (_, p) => new State(p), provider);
        TimeSpan? cooldown = null;
        lock (s.Gate)
        {
            s.Failures++;
            s.LastFailure = FailoverRules.Label(kind);
            if (kind == FailureKind.Auth) cooldown = o.MaxCooldown; // a revoked key stays revoked: probe it rarely
            else if (kind == FailureKind.RateLimited && retryAfter is { } wait && wait > TimeSpan.Zero) cooldown = wait < o.MaxCooldown ? wait : o.MaxCooldown;
            else if (s.Failures >= o.FailureThreshold)
            {
                var doubled = o.Cooldown * Math.Pow(2, Math.Min(s.Cooldowns, 16));
                cooldown = doubled < o.MaxCooldown ? doubled : o.MaxCooldown;
            }
            if (cooldown is null) return null;
            s.Cooldowns++;
            var until = time.GetUtcNow() + cooldown.Value;
            var untilMs = until.ToUnixTimeMilliseconds();
            if (untilMs <= s.CooledUntilMs) return null;
            Volatile.Write(ref s.CooledUntilMs, untilMs);
            metrics.DeploymentCooledDown(s.Provider, deploymentId, s.LastFailure);
            CooledDown?.Invoke(deploymentId, until);
            return until;
        }
    }

    /// <summary>Another replica cooled this deployment down until <paramref name="untilMs"/> (Unix ms).</summary>
    public void ApplyShared(string deploymentId, long untilMs)
    {
        if (!_states.TryGetValue(deploymentId, out var s)) return; // not one of ours
        lock (s.Gate)
        {
            if (untilMs > s.CooledUntilMs) Volatile.Write(ref s.CooledUntilMs, untilMs);
        }
    }

    /// <summary>Every known deployment's health, for the deployments endpoint.</summary>
    public IReadOnlyList<DeploymentStatus> Snapshot()
    {
        var now = NowMs;
        var list = new List<DeploymentStatus>(_states.Count);
        foreach (var (id, s) in _states)
        {
            var until = Volatile.Read(ref s.CooledUntilMs);
            list.Add(new DeploymentStatus(id, s.Provider, until > now ? "cooling_down" : s.Failures > 0 ? "degraded" : "healthy",
                until > now ? DateTimeOffset.FromUnixTimeMilliseconds(until) : null, s.Failures, s.LastFailure));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return list;
    }
}

/// <summary>One deployment's health as shown to operators: never its key or URL.</summary>
public sealed record DeploymentStatus(string Id, string Provider, string Health, DateTimeOffset? CooldownUntil, int ConsecutiveFailures,
    string? LastFailure);
