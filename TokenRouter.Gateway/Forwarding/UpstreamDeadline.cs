using System.Collections.Concurrent;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Times one upstream attempt — its first byte, then each silence of its body (<see cref="IdleDeadline"/>) — and is
/// cancelled with whatever it is linked to (the exchange, or the client of a passthrough call). Disposing it gives it
/// back to its <see cref="DeadlinePool"/>: the caller must not use it or its token afterwards.
/// </summary>
/// <remarks>Pooled because a linked <see cref="CancellationTokenSource"/> made per request cost the request its timer,
/// its registration list and their nodes (~0.3 KB), all of which a reset source keeps for the next
/// (<see cref="CancellationTokenSource.TryReset"/>) — as YARP's forwarder pools its activity timeouts.</remarks>
public sealed class UpstreamDeadline : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly DeadlinePool _pool;
    private CancellationTokenRegistration _link;
    private int _rented;

    internal UpstreamDeadline(DeadlinePool pool) => _pool = pool;

    public CancellationToken Token => _source.Token;

    /// <summary>The deadline passed, or what it is linked to was cancelled.</summary>
    public bool IsCancellationRequested => _source.IsCancellationRequested;

    /// <summary>Starts the wait over: it now ends <paramref name="timeout"/> from now.</summary>
    public void Restart(TimeSpan timeout) => _source.CancelAfter(timeout);

    internal void Start(TimeSpan timeout, CancellationToken linked)
    {
        Volatile.Write(ref _rented, 1);
        // Registered before the timer, so that an already cancelled link cancels at once, as a linked source would.
        _link = linked.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _source);
        _source.CancelAfter(timeout);
    }

    public void Dispose()
    {
        // Twice would hand one source to two requests.
        if (Interlocked.Exchange(ref _rented, 0) == 0) return;
        // Waits for a cancellation already running through the link, which then keeps the source out of the pool.
        _link.Dispose();
        _link = default;
        // Only a source that never fired resets: a cancelled token must never become uncancelled under its holder.
        if (!_source.TryReset() || !_pool.TryKeep(this)) _source.Dispose();
    }
}

/// <summary>Reset <see cref="UpstreamDeadline"/>s waiting for their next request (at most <paramref name="capacity"/>:
/// a burst of 10,000 streams does not leave 10,000 behind).</summary>
/// <remarks>Not <c>Microsoft.Extensions.ObjectPool</c>: here the return is the deadline's own <c>Dispose</c> (callers hold
/// it in <c>using</c>), and its <c>DisposableObjectPool</c> disposes what it does not keep — that same <c>Dispose</c> again.</remarks>
public sealed class DeadlinePool(int capacity)
{
    public static DeadlinePool Shared { get; } = new(1024);

    private readonly ConcurrentQueue<UpstreamDeadline> _kept = new();
    private int _count;

    /// <summary>A deadline <paramref name="timeout"/> from now, cancelled early with <paramref name="linked"/>.</summary>
    public UpstreamDeadline Start(TimeSpan timeout, CancellationToken linked)
    {
        if (_kept.TryDequeue(out var deadline)) Interlocked.Decrement(ref _count);
        else deadline = new UpstreamDeadline(this);
        deadline.Start(timeout, linked);
        return deadline;
    }

    internal bool TryKeep(UpstreamDeadline deadline)
    {
        if (Interlocked.Increment(ref _count) > capacity)
        {
            Interlocked.Decrement(ref _count);
            return false;
        }
        _kept.Enqueue(deadline);
        return true;
    }
}
