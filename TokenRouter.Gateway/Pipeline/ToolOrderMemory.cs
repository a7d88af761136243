using System.Collections.Concurrent;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Remembers the tool order each recent conversation was sent with, so a conversation that adds a tool keeps its
/// cached prefix (the new tool is appended, not sorted into the middle). Keyed by the conversation's root hash,
/// kept for as long as a provider cache lives. Bounded: the oldest half is dropped when full.
/// </summary>
public sealed class ToolOrderMemory(TimeProvider time)
{
    private readonly ConcurrentDictionary<UInt128, Entry> _entries = new();
    private const int MaxEntries = 50_000;

    private sealed record Entry(string[] Order, long LastUsed);

    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    public bool TryGet(UInt128 conversationRoot, out string[] order)
    {
        if (_entries.TryGetValue(conversationRoot, out var e) && time.GetElapsedTime(e.LastUsed) < Ttl)
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
        _entries[conversationRoot] = new Entry(order, time.GetTimestamp());
    }

    /// <summary>Refreshes the entry's age (a conversation in use keeps its order).</summary>
    public void Touch(UInt128 conversationRoot, string[] order) => _entries[conversationRoot] = new Entry(order, time.GetTimestamp());

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
