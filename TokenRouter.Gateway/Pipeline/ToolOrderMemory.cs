using System.Collections.Concurrent;
using StackExchange.Redis;
using TokenRouter.Contracts;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Remembers the tool order each recent conversation was sent with, so a conversation that adds a tool keeps its
/// cached prefix (the new tool is appended, not sorted into the middle). Keyed by the conversation's root hash,
/// kept for as long as a provider cache lives. Bounded: the oldest half is dropped when full.
/// With Redis, orders are shared between replicas: a replica that has not seen a conversation fetches its order
/// once (<see cref="PrefetchAsync"/>, before the synchronous pipeline runs) and every change is written behind.
/// </summary>
public sealed class ToolOrderMemory(TimeProvider time, IConnectionMultiplexer? redis = null)
{
    private readonly ConcurrentDictionary<UInt128, Entry> _entries = new();
    private const int MaxEntries = 50_000;

    /// <summary>Refreshed in place by <see cref="Touch"/>, which every turn of a known conversation calls.</summary>
    private sealed class Entry(string[] order, long lastUsed, long lastShared)
    {
        public string[] Order { get; } = order;
        public long LastUsed = lastUsed;
        public long LastShared = lastShared;
    }

    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    public bool TryGet(UInt128 conversationRoot, out string[] order)
    {
        if (_entries.TryGetValue(conversationRoot, out var e) && time.GetElapsedTime(Volatile.Read(ref e.LastUsed)) < Ttl)
        {
            order = e.Order;
            return true;
        }
        order = [];
        return false;
    }

    public void Set(UInt128 conversationRoot, string[] order)
    {
        if (_entries.Count >= MaxEntries) Evict();
        _entries[conversationRoot] = new Entry(order, time.GetTimestamp(), time.GetTimestamp());
        if (redis is not null)
        {
            // Write-behind: the request never waits for it; a lost write only costs another replica a cache miss.
            _ = redis.GetDatabase().StringSetAsync(RedisContract.ToolOrderKey(conversationRoot), string.Join('\n', order), Ttl,
                flags: CommandFlags.FireAndForget);
        }
    }

    /// <summary>Refreshes the entry's age (a conversation in use keeps its order).</summary>
    public void Touch(UInt128 conversationRoot, string[] order)
    {
        var now = time.GetTimestamp();
        var found = _entries.TryGetValue(conversationRoot, out var e);
        var shared = found ? Volatile.Read(ref e!.LastShared) : now;
        if (redis is not null && time.GetElapsedTime(shared) > Ttl / 4)
        {
            // A long conversation keeps its shared order alive too, at most a few times per TTL.
            _ = redis.GetDatabase().KeyExpireAsync(RedisContract.ToolOrderKey(conversationRoot), Ttl, flags: CommandFlags.FireAndForget);
            shared = now;
        }
        if (found && ReferenceEquals(e!.Order, order))
        {
            // The same order: refreshed in place, not a new entry per request.
            Volatile.Write(ref e.LastUsed, now);
            Volatile.Write(ref e.LastShared, shared);
        }
        else _entries[conversationRoot] = new Entry(order, now, shared);
    }

    /// <summary>Loads a conversation's order from Redis when this replica has not seen it (one round trip, then local).</summary>
    public async ValueTask PrefetchAsync(UInt128 conversationRoot)
    {
        if (redis is null || TryGet(conversationRoot, out _)) return;
        try
        {
            var value = await redis.GetDatabase().StringGetAsync(RedisContract.ToolOrderKey(conversationRoot));
            if (value.HasValue) _entries[conversationRoot] = new Entry(value.ToString().Split('\n'), time.GetTimestamp(), time.GetTimestamp());
        }
        catch (RedisException)
        {
            // Without the shared order this replica falls back to name order: a cache miss, never a wrong request.
        }
    }

    public int Count => _entries.Count;

    private void Evict()
    {
        var cutoff = _entries.Values.Select(e => e.LastUsed).Order().ElementAt(_entries.Count / 2);
        foreach (var (key, e) in _entries)
        {
            if (e.LastUsed <= cutoff) _entries.TryRemove(key, out _);
        }
    }
}
