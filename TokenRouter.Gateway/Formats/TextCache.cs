using System.Collections.Concurrent;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// Strings made from a value that requests repeat (a prefix hash's hex, a prompt cache key, a provider key's header
/// value), made once per value instead of once per request. Bounded: emptied whenever <paramref name="capacity"/> values
/// were added since, so that values a client varies cannot grow it.
/// </summary>
internal sealed class TextCache<TKey>(int capacity) where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, string> _texts = new();
    private int _added;

    public string Get<TState>(TKey key, TState state, Func<TKey, TState, string> make)
    {
        if (_texts.TryGetValue(key, out var text)) return text;
        text = make(key, state);
        if (Interlocked.Increment(ref _added) > capacity)
        {
            _texts.Clear();
            Interlocked.Exchange(ref _added, 0);
        }
        return _texts.GetOrAdd(key, text);
    }
}
