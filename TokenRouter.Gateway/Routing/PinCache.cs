using System.Collections.Concurrent;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// This replica's pins (affinity key → deployment id) with expiry, bounded: when it grows past its bound, expired pins go
/// first, then the ones closest to expiry (least recently used, since a hit extends a pin). A pin is a small object whose
/// expiry is updated in place, so a hit allocates nothing.
/// </summary>
internal sealed class PinCache(int maxEntries)
{
    private readonly ConcurrentDictionary<UInt128, Pin> _pins = new();
    private readonly Lock _trimLock = new();
    private int _count;

    internal sealed class Pin(string deploymentId, long expiresAt, long sharedAt)
    {
        public string DeploymentId { get; } = deploymentId;
        public long ExpiresAt = expiresAt;
        /// <summary>When this replica last wrote the pin to Redis (UTC ticks).</summary>
        public long SharedAt = sharedAt;
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>The live pin of <paramref name="key"/>, its expiry moved to <paramref name="extendTo"/> (a hit keeps it warm).</summary>
    public Pin? TryGet(UInt128 key, long now, long extendTo)
    {
        if (!_pins.TryGetValue(key, out var pin) || Volatile.Read(ref pin.ExpiresAt) <= now) return null;
        if (extendTo > Volatile.Read(ref pin.ExpiresAt)) Volatile.Write(ref pin.ExpiresAt, extendTo);
        return pin;
    }

    /// <summary>Pins <paramref name="key"/> to <paramref name="deploymentId"/> until <paramref name="expiresAt"/>; returns
    /// the pin (the live one, extended, when it already named that deployment).</summary>
    public Pin Set(UInt128 key, string deploymentId, long now, long expiresAt, long sharedAt)
    {
        while (true)
        {
            if (_pins.TryGetValue(key, out var old))
            {
                if (old.DeploymentId == deploymentId && Volatile.Read(ref old.ExpiresAt) > now)
                {
                    if (expiresAt > Volatile.Read(ref old.ExpiresAt)) Volatile.Write(ref old.ExpiresAt, expiresAt);
                    return old;
                }
                var replacement = new Pin(deploymentId, expiresAt, sharedAt);
                if (_pins.TryUpdate(key, replacement, old)) return replacement;
            }
            else
            {
                var pin = new Pin(deploymentId, expiresAt, sharedAt);
                if (_pins.TryAdd(key, pin))
                {
                    if (Interlocked.Increment(ref _count) > maxEntries) Trim(now);
                    return pin;
                }
            }
        }
    }

    // Runs on the inserting thread that crossed the bound; others keep going (a brief overshoot is fine).
    private void Trim(long now)
    {
        if (!_trimLock.TryEnter()) return;
        try
        {
            foreach (var entry in _pins)
            {
                if (Volatile.Read(ref entry.Value.ExpiresAt) <= now && _pins.TryRemove(entry)) Interlocked.Decrement(ref _count);
            }

            // Still too many live pins: drop those closest to expiry down to ~90 %, the cut-off taken from a bounded
            // sample so a trim never copies or sorts the whole cache.
            var count = Volatile.Read(ref _count);
            var excess = count - (maxEntries - (maxEntries / 10));
            if (excess <= 0) return;
            var sample = new long[Math.Min(count, 4096)];
            var step = Math.Max(1, count / sample.Length);
            int seen = 0, taken = 0;
            foreach (var entry in _pins)
            {
                if (seen++ % step == 0 && taken < sample.Length) sample[taken++] = Volatile.Read(ref entry.Value.ExpiresAt);
            }
            if (taken == 0) return;
            Array.Sort(sample, 0, taken);
            var cutoff = sample[Math.Clamp((int)((long)excess * taken / count), 0, taken - 1)];
            foreach (var entry in _pins)
            {
                if (Volatile.Read(ref entry.Value.ExpiresAt) <= cutoff && _pins.TryRemove(entry)) Interlocked.Decrement(ref _count);
            }
        }
        finally
        {
            _trimLock.Exit();
        }
    }
}
