namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Tells a deadline that fired on its own (the provider was too slow or went quiet) from one that fired because the
/// client left: the deadline is linked to the client's <c>RequestAborted</c>, so both cancel it. Which came first is
/// read at the moment the deadline fires, because afterwards the tokens no longer say: after a timeout YARP aborts the
/// client's connection itself.
/// </summary>
internal sealed class DeadlineWatch : IDisposable
{
    private readonly CancellationToken _client;
    private readonly CancellationTokenRegistration _registration;
    private volatile bool _timedOut;

    /// <param name="deadline">The token of a deadline linked to <paramref name="client"/>.</param>
    public DeadlineWatch(CancellationToken deadline, CancellationToken client)
    {
        _client = client;
        _registration = deadline.UnsafeRegister(static s => ((DeadlineWatch)s!).Fired(), this);
    }

    /// <summary>The deadline fired while the client was still there.</summary>
    public bool TimedOut => _timedOut;

    private void Fired() => _timedOut = !_client.IsCancellationRequested;

    public void Dispose() => _registration.Dispose();
}
