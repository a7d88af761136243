using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Limits;

/// <summary>Which concurrency limit refused a request.</summary>
public enum ConcurrencyRejection
{
    None,
    Global,
    Stream,
    NonStream,
    Provider,
}

/// <summary>
/// This process's in-flight upstream requests: global, streaming vs non-streaming, and per provider. Plain interlocked
/// counters, no locks and no Redis: these limits protect this process and its upstream connections. A slot is taken
/// with a compare-and-swap, so a limit is never exceeded and never refuses a request that would have fit.
/// </summary>
public sealed class ConcurrencyLimiter : IInFlightRequests
{
    private int _global;
    private int _stream;
    private int _nonStream;
    private readonly ConcurrentDictionary<string, StrongBox<int>> _providers = new(StringComparer.Ordinal);

    public int Global => Volatile.Read(ref _global);

    private int _outstanding;

    /// <summary>
    /// Admissions not yet disposed: requests between admission and their usage record (whether or not concurrency limits
    /// are on). Shutdown waits for these before the last usage flush.
    /// </summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    internal void AdmissionOpened() => Interlocked.Increment(ref _outstanding);

    internal void AdmissionClosed() => Interlocked.Decrement(ref _outstanding);

    /// <summary>Waits until no admission is outstanding, polling (only used at shutdown); false when <paramref name="ct"/> ends first.</summary>
    public async Task<bool> WaitUntilIdleAsync(TimeProvider time, CancellationToken ct)
    {
        try
        {
            while (Outstanding > 0) await Task.Delay(TimeSpan.FromMilliseconds(20), time, ct);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
    public int Stream => Volatile.Read(ref _stream);
    public int NonStream => Volatile.Read(ref _nonStream);

    public int Provider(string provider) => _providers.TryGetValue(provider, out var box) ? Volatile.Read(ref box.Value) : 0;

    /// <summary>
    /// Takes one global, one stream-kind and one provider slot, all or none; 0 limits are unlimited but still counted.
    /// On success <paramref name="providerSlot"/> is what <see cref="Release"/> needs back.
    /// </summary>
    public ConcurrencyRejection TryAcquire(bool stream, string provider, LimitsOptions limits, out StrongBox<int>? providerSlot)
    {
        providerSlot = null;
        if (!TryIncrement(ref _global, limits.GlobalConcurrent)) return ConcurrencyRejection.Global;
        if (!TryIncrement(ref KindCounter(stream), stream ? limits.StreamConcurrent : limits.NonStreamConcurrent))
        {
            Interlocked.Decrement(ref _global);
            return stream ? ConcurrencyRejection.Stream : ConcurrencyRejection.NonStream;
        }
        var box = _providers.GetOrAdd(provider, static _ => new StrongBox<int>());
        if (!TryIncrement(ref box.Value, limits.ProviderConcurrent))
        {
            Interlocked.Decrement(ref KindCounter(stream));
            Interlocked.Decrement(ref _global);
            return ConcurrencyRejection.Provider;
        }
        providerSlot = box;
        return ConcurrencyRejection.None;
    }

    public void Release(bool stream, StrongBox<int> providerSlot)
    {
        Interlocked.Decrement(ref providerSlot.Value);
        Interlocked.Decrement(ref KindCounter(stream));
        Interlocked.Decrement(ref _global);
    }

    private ref int KindCounter(bool stream) => ref stream ? ref _stream : ref _nonStream;

    private static bool TryIncrement(ref int counter, int limit)
    {
        if (limit <= 0)
        {
            Interlocked.Increment(ref counter);
            return true;
        }
        var current = Volatile.Read(ref counter);
        while (true)
        {
            if (current >= limit) return false;
            var seen = Interlocked.CompareExchange(ref counter, current + 1, current);
            if (seen == current) return true;
            current = seen;
        }
    }
}
