namespace TokenRouter.Gateway.Accounting;

/// <summary>
/// Requests admitted but not yet recorded. The usage sink waits for them before its last flush at shutdown; the
/// admission side (Limits) implements it, so accounting does not depend on limits.
/// </summary>
public interface IInFlightRequests
{
    int Outstanding { get; }

    /// <summary>Waits until <see cref="Outstanding"/> is zero; false when <paramref name="ct"/> ends first.</summary>
    Task<bool> WaitUntilIdleAsync(TimeProvider time, CancellationToken ct);
}
