using System.Collections.Concurrent;

namespace TokenRouter.Simulator;

/// <summary>
/// Bounded, thread-safe set of cached prefix hashes with expiry. The value is the expiry in ticks with the
/// lowest bit used as the "1 hour TTL" flag, so the value stays a single atomically writable long and a
/// refresh does not allocate.
/// </summary>
internal sealed class SimPrefixCache(TimeProvider time, int maxEntries)
{
    private const long LongTtlFlag = 1;

    private readonly ConcurrentDictionary<SimHash, long> _entries = new();
    private readonly Lock _trimLock = new();
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public long NowTicks => time.GetUtcNow().UtcTicks;

    /// <summary>True when <paramref name="key"/> is cached and not expired; reports whether it was written with a 1 h TTL.</summary>
    public bool TryGet(SimHash key, long nowTicks, out bool longTtl)
    {
        if (_entries.TryGetValue(key, out var value) && (value & ~LongTtlFlag) > nowTicks)
        {
            longTtl = (value & LongTtlFlag) != 0;
            return true;
        }

        longTtl = false;
        return false;
    }

    /// <summary>Adds or refreshes an entry. A live entry is never shortened and keeps its 1 h class.</summary>
    public void Put(SimHash key, long nowTicks, TimeSpan ttl, bool longTtl = false)
    {
        var value = ((nowTicks + ttl.Ticks) & ~LongTtlFlag) | (longTtl ? LongTtlFlag : 0);
        while (true)
        {
            if (_entries.TryGetValue(key, out var old))
            {
                var merged = (old & ~LongTtlFlag) > nowTicks
                    ? Math.Max(old & ~LongTtlFlag, value & ~LongTtlFlag) | ((old | value) & LongTtlFlag)
                    : value;
                if (merged == old || _entries.TryUpdate(key, merged, old))
                    return;
            }
            else if (_entries.TryAdd(key, value))
            {
                if (Interlocked.Increment(ref _count) > maxEntries)
                    Trim(nowTicks);
                return;
            }
        }
    }

    public void Clear()
    {
        lock (_trimLock)
        {
            _entries.Clear();
            Volatile.Write(ref _count, 0);
        }
    }

    // Runs on the inserting thread that crossed the bound; others keep going (a brief overshoot is fine).
    private void Trim(long nowTicks)
    {
        if (!_trimLock.TryEnter())
            return;
        try
        {
            foreach (var entry in _entries)
            {
                if ((entry.Value & ~LongTtlFlag) <= nowTicks && _entries.TryRemove(entry))
                    Interlocked.Decrement(ref _count);
            }

            // Still too many live entries: drop the least recently used (earliest expiry) down to ~90 %.
            // The cut-off comes from a bounded sample so a trim never copies or sorts the whole cache.
            var count = Volatile.Read(ref _count);
            var excess = count - (maxEntries - (maxEntries / 10));
            if (excess <= 0)
                return;
            var sample = new long[Math.Min(count, 4096)];
            var step = Math.Max(1, count / sample.Length);
            int seen = 0, taken = 0;
            foreach (var entry in _entries)
            {
                if (seen++ % step == 0 && taken < sample.Length)
                    sample[taken++] = entry.Value & ~LongTtlFlag;
            }

            if (taken == 0)
                return;
            Array.Sort(sample, 0, taken);
            var cutoff = sample[Math.Clamp((int)((long)excess * taken / count), 0, taken - 1)];
            foreach (var entry in _entries)
            {
                if ((entry.Value & ~LongTtlFlag) <= cutoff && _entries.TryRemove(entry))
                    Interlocked.Decrement(ref _count);
            }
        }
        finally
        {
            _trimLock.Exit();
        }
    }
}
