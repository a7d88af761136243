namespace TokenRouter.Gateway.Limits;

/// <summary>
/// What one admission asks of a key's shared counters (and of its team's, when <see cref="Team"/> is set: both are
/// checked and charged in one atomic step). Absent limits are null. <see cref="KeyPeriod"/> is the key's budget period
/// (default: its lifetime).
/// </summary>
public readonly record struct KeyAdmitRequest(
    string KeyId,
    int? RequestsPerMinute,
    int? TokensPerMinute,
    int EstimatedTokens,
    long? QuotaNanos,
    long ReserveNanos,
    long NowUnixMs,
    TimeSpan HoldTtl,
    QuotaPeriod KeyPeriod = default,
    TeamAdmitRequest? Team = null);

/// <summary>The team's part of an admission: its limits, budget and budget period, under scope id <see cref="ScopeId"/>.</summary>
public sealed record TeamAdmitRequest(
    string ScopeId,
    int? RequestsPerMinute,
    int? TokensPerMinute,
    long? QuotaNanos,
    QuotaPeriod Period = default);

/// <summary>
/// Which quota hash a budget uses: the lifetime one (default) or that of the period starting at
/// <see cref="StartUnixSeconds"/>, which may be forgotten after <see cref="ExpireAtUnixMs"/>.
/// </summary>
public readonly record struct QuotaPeriod(long StartUnixSeconds, long ExpireAtUnixMs)
{
    public bool IsPeriodic => ExpireAtUnixMs > 0;

    public long? Start => IsPeriodic ? StartUnixSeconds : null;

    /// <summary>The hash of a period is kept one period (at least a day) past its end, then expires.</summary>
    public static QuotaPeriod Of(Contracts.BudgetPeriod period)
    {
        var length = period.End - period.Start;
        var keep = length < TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : length;
        return new QuotaPeriod(period.StartUnixSeconds, (period.End + keep).ToUnixTimeMilliseconds());
    }
}

/// <summary>Whose limit refused an admission.</summary>
public enum LimitScope
{
    Key,
    Team,
}

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
/// and <see cref="ReservedNanos"/> the quota state of the scope that refused (<see cref="RefusedBy"/>), or the key's
/// when admitted (the team's in <see cref="TeamSpentNanos"/>, <see cref="TeamReservedNanos"/>; its window in
/// <see cref="TeamWindow"/>). <see cref="HoldId"/> identifies the
/// reservation to settle (null when no quota applies).
/// </summary>
public readonly record struct KeyAdmitResult(
    KeyAdmitOutcome Outcome,
    long Window,
    long Used = 0,
    long SpentNanos = 0,
    long ReservedNanos = 0,
    string? HoldId = null,
    LimitScope RefusedBy = LimitScope.Key,
    long TeamWindow = 0,
    long TeamSpentNanos = 0,
    long TeamReservedNanos = 0);

/// <summary>
/// How an admission ends: the reservation is replaced by the real cost, and the tokens charged to TPM at admission
/// (the estimate) are corrected by <see cref="TokenDelta"/>. <see cref="Window"/> is the admission's window, or null
/// when no TPM applied. With a team, <see cref="KeyHoldsQuota"/> says whether the hold was taken on the key's quota too
/// (it has one); without, the hold is always the key's.
/// </summary>
public readonly record struct KeySettlement(
    string KeyId,
    string? HoldId,
    long ReservedNanos,
    long ActualNanos,
    long? Window,
    long TokenDelta,
    long NowUnixMs,
    QuotaPeriod KeyPeriod = default,
    TeamSettlement? Team = null,
    bool KeyHoldsQuota = true);

/// <summary>The team's part of a settlement: the same hold, reservation and cost, booked in the team's period.
/// <see cref="Window"/> is the team's admission window, or null when no team TPM applied.</summary>
public sealed record TeamSettlement(string ScopeId, long? Window, QuotaPeriod Period = default, bool HoldsQuota = false);

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
