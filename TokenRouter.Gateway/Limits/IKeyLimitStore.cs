namespace TokenRouter.Gateway.Limits;

/// <summary>What one admission asks of a key's shared counters. Absent limits are null.</summary>
public readonly record struct KeyAdmitRequest(
    string KeyId,
    int? RequestsPerMinute,
    int? TokensPerMinute,
    int EstimatedTokens,
    long? QuotaNanos,
    long ReserveNanos,
    long NowUnixMs,
    TimeSpan HoldTtl);

public enum KeyAdmitOutcome
{
    Admitted,
    RequestsPerMinuteExceeded,
    TokensPerMinuteExceeded,
    QuotaExceeded,
}

/// <summary>
/// The store's answer. <see cref="Window"/> is the unix minute the rate counters were charged to (or would have been);
/// <see cref="Used"/> the requests or tokens already counted in it when a rate limit refused; <see cref="SpentNanos"/>
/// and <see cref="ReservedNanos"/> the key's quota state when the quota refused. <see cref="HoldId"/> identifies the
/// reservation to settle (null when no quota applies).
/// </summary>
public readonly record struct KeyAdmitResult(
    KeyAdmitOutcome Outcome,
    long Window,
    long Used = 0,
    long SpentNanos = 0,
    long ReservedNanos = 0,
    string? HoldId = null);

/// <summary>
/// How an admission ends: the reservation is replaced by the real cost, and the tokens charged to TPM at admission
/// (the estimate) are corrected by <see cref="TokenDelta"/>. <see cref="Window"/> is the admission's window, or null
/// when no TPM applied.
/// </summary>
public readonly record struct KeySettlement(
    string KeyId,
    string? HoldId,
    long ReservedNanos,
    long ActualNanos,
    long? Window,
    long TokenDelta,
    long NowUnixMs);

/// <summary>
/// Per-key RPM/TPM windows and quota spend: shared by every replica through Redis, or in this process when there is
/// none. Both operations are atomic per key: concurrent admissions can never overshoot a limit or a quota.
/// </summary>
public interface IKeyLimitStore
{
    /// <summary>Checks and charges in one atomic step; charges nothing when it refuses.</summary>
    ValueTask<KeyAdmitResult> AdmitAsync(KeyAdmitRequest request);

    /// <summary>Never throws: a settlement that cannot be written now is retried or logged.</summary>
    ValueTask SettleAsync(KeySettlement settlement);
}

internal static class Windows
{
    public const long WindowMs = 60_000;
    public static long MinuteOf(long unixMs) => Math.DivRem(unixMs, WindowMs, out var rem) - (rem < 0 ? 1 : 0);
}
