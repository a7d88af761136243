using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// Per-deployment cap on upstream requests in flight (<c>MaxConcurrency</c>), counted on this replica. A deployment at its
/// cap is saturated like one at its RPM: the balancer puts it last and failover skips it (never waits for it); when all
/// are saturated the client gets a 429 with <c>Retry-After: 1</c>. A deployment without a cap costs nothing here.
/// </summary>
/// <remarks>
/// Lock-free: one <see cref="Interlocked"/> counter per capped deployment id, kept by id (not on the deployment object)
/// so a slot taken before Admin swaps a provider's deployments is still given back to the same count.
/// </remarks>
public sealed class DeploymentConcurrencyLimiter
{
    internal sealed class Counter(string provider, string id)
    {
        public readonly string Provider = provider;
        public readonly string Id = id;
        public int InFlight;
    }

    private readonly ConcurrentDictionary<string, Counter> _counters = new(StringComparer.Ordinal);

    public DeploymentConcurrencyLimiter()
    {
    }

    public DeploymentConcurrencyLimiter(IMeterFactory meterFactory)
    {
        meterFactory.Create(GatewayMetrics.MeterName).CreateObservableGauge("tokenrouter.deployment.inflight", Observe, "{request}",
            "Upstream requests in flight per deployment that has a MaxConcurrency.");
    }

    /// <summary>Requests in flight at the deployment (0 for one never capped).</summary>
    public int InFlight(string id) => _counters.TryGetValue(id, out var c) ? Volatile.Read(ref c.InFlight) : 0;

    /// <summary>Whether the deployment is at its cap right now (no cap: never).</summary>
    public bool IsSaturated(string id, int? maxConcurrency) =>
        maxConcurrency is { } max && _counters.TryGetValue(id, out var c) && Volatile.Read(ref c.InFlight) >= max;

    /// <summary>Takes a slot unless the deployment is at its cap; false = saturated, nothing taken. Without a cap the slot
    /// is null (nothing to give back, nothing allocated); otherwise the caller disposes it once the exchange has ended.</summary>
    /// <param name="provider">Tags the deployment's gauge.</param>
    public bool TryAcquire(string provider, string id, int? maxConcurrency, out ConcurrencySlot? slot)
    {
        slot = null;
        if (maxConcurrency is not { } max) return true;
        var c = _counters.GetOrAdd(id, static (id, provider) => new Counter(provider, id), provider);
        while (true)
        {
            var current = Volatile.Read(ref c.InFlight);
            if (current >= max) return false;
            if (Interlocked.CompareExchange(ref c.InFlight, current + 1, current) == current) break;
        }
        slot = new ConcurrencySlot(c);
        return true;
    }

    private IEnumerable<Measurement<int>> Observe()
    {
        foreach (var c in _counters.Values)
            yield return new Measurement<int>(Volatile.Read(ref c.InFlight), new TagList { { "provider", c.Provider }, { "deployment", c.Id } });
    }
}

/// <summary>One request's place at a capped deployment. Disposing gives it back exactly once, however often it is disposed
/// (and from whichever thread), so a copy in a finally and another in a handed-over answer can never count twice.</summary>
public sealed class ConcurrencySlot : IDisposable
{
    private DeploymentConcurrencyLimiter.Counter? _counter;

    internal ConcurrencySlot(DeploymentConcurrencyLimiter.Counter counter) => _counter = counter;

    public bool Released => Volatile.Read(ref _counter) is null;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _counter, null) is { } c) Interlocked.Decrement(ref c.InFlight);
    }
}
