using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Configuration;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// This process's in-flight exchanges by FullHash (which already includes the dedup scope). A request whose hash
/// is in flight listens to that exchange instead of calling the provider; entries leave when their call ends, or
/// stop being joinable after <c>DEDUP_TTL</c>, so only truly concurrent requests coalesce.
/// </summary>
public sealed class InflightRegistry(IOptionsMonitor<GatewayOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, InflightExchange> _inflight = new(StringComparer.Ordinal);

    public int Count => _inflight.Count;

    /// <summary>How many listen to the exchange in flight for <paramref name="key"/> right now (0 when none is): for
    /// diagnostics and for tests that must know every request has attached before letting the provider answer.</summary>
    public int ListenersOf(string key) => _inflight.TryGetValue(key, out var exchange) ? exchange.Listeners : 0;

    /// <summary>Joins the exchange in flight for <paramref name="key"/> as a listener, or creates one and returns
    /// <c>leader = true</c>: the caller must then produce it (call upstream) and <see cref="Remove"/> it when done.</summary>
    public InflightExchange Join(string key, bool stream, out bool leader)
    {
        var ttl = options.CurrentValue.DedupTtl;
        while (true)
        {
            if (_inflight.TryGetValue(key, out var existing))
            {
                if (time.GetElapsedTime(existing.CreatedAt) < ttl && existing.TryListen())
                {
                    leader = false;
                    return existing;
                }
                // Over, or too old to join: take its place.
                _inflight.TryRemove(new KeyValuePair<string, InflightExchange>(key, existing));
                continue;
            }
            var created = new InflightExchange(key, stream, time.GetTimestamp());
            created.TryListen();
            if (_inflight.TryAdd(key, created))
            {
                leader = true;
                return created;
            }
        }
    }

    public void Remove(InflightExchange exchange) =>
        _inflight.TryRemove(new KeyValuePair<string, InflightExchange>(exchange.Key, exchange));
}
