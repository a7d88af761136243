using System.Collections.Concurrent;
using System.Globalization;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// Embedded mode (no Redis): the same per-key (and per-team) windows and quota semantics as <see cref="RedisKeyLimitStore"/>,
/// under a lock per scope (a key's, then its team's, always in that order). Nothing survives a restart, and nothing
/// outlives this process, so reservations need no expiry.
/// </summary>
public sealed class LocalKeyLimitStore : IKeyLimitStore
{
    private readonly ConcurrentDictionary<string, ScopeState> _scopes = new(StringComparer.Ordinal);
    private long _holdSequence;

    private sealed class ScopeState
    {
        public readonly Lock Gate = new();
        public long Window = long.MinValue;
        public long Requests;
        public long Tokens;
        public readonly Dictionary<long, PeriodQuota> Quotas = [];

        public PeriodQuota Quota(QuotaPeriod period)
        {
            var start = period.Start ?? long.MinValue;
            if (!Quotas.TryGetValue(start, out var quota))
            {
                if (period.IsPeriodic)
                {
                    // Periods over are forgotten (their spend no longer counts against anything).
                    foreach (var old in Quotas.Keys.Where(k => k != long.MinValue && k < start).ToList()) Quotas.Remove(old);
                }
                Quotas[start] = quota = new PeriodQuota();
            }
            return quota;
        }
    }

    private sealed class PeriodQuota
    {
        public long SpentNanos;
        public long ReservedNanos;
        public readonly HashSet<string> Holds = new(StringComparer.Ordinal);
    }

    private readonly record struct ScopeAsk(string Id, int? Rpm, int? Tpm, long? QuotaNanos, QuotaPeriod Period);

    public ValueTask<KeyAdmitResult> AdmitAsync(KeyAdmitRequest r)
    {
        var key = new ScopeAsk(r.KeyId, r.RequestsPerMinute, r.TokensPerMinute, r.QuotaNanos, r.KeyPeriod);
        var keyState = _scopes.GetOrAdd(r.KeyId, static _ => new ScopeState());
        if (r.Team is not { } t)
        {
            lock (keyState.Gate) return ValueTask.FromResult(Admit(r, key, keyState, null, null));
        }
        var team = new ScopeAsk(t.ScopeId, t.RequestsPerMinute, t.TokensPerMinute, t.QuotaNanos, t.Period);
        var teamState = _scopes.GetOrAdd(t.ScopeId, static _ => new ScopeState());
        lock (keyState.Gate)
        {
            lock (teamState.Gate) return ValueTask.FromResult(Admit(r, key, keyState, team, teamState));
        }
    }

    private KeyAdmitResult Admit(KeyAdmitRequest r, ScopeAsk key, ScopeState keyState, ScopeAsk? team, ScopeState? teamState)
    {
        var minute = Windows.MinuteOf(r.NowUnixMs);
        var keyCheck = Check(r, key, keyState, minute, LimitScope.Key);
        if (keyCheck.Refusal is { } refusedByKey) return refusedByKey;
        (long Window, KeyAdmitResult? Refusal) teamCheck = (minute, null);
        if (team is { } tm)
        {
            teamCheck = Check(r, tm, teamState!, minute, LimitScope.Team);
            if (teamCheck.Refusal is { } refusedByTeam) return refusedByTeam;
        }

        string? hold = null;
        if (key.QuotaNanos is not null || team?.QuotaNanos is not null)
            hold = Interlocked.Increment(ref _holdSequence).ToString(CultureInfo.InvariantCulture);
        var (keySpent, keyReserved) = Charge(r, key, keyState, keyCheck.Window, hold);
        var (teamSpent, teamReserved) = team is { } tc ? Charge(r, tc, teamState!, teamCheck.Window, hold) : (0, 0);
        return new KeyAdmitResult(KeyAdmitOutcome.Admitted, keyCheck.Window, 0, keySpent, keyReserved, hold, LimitScope.Key,
            teamCheck.Window, teamSpent, teamReserved);
    }

    private static (long Window, KeyAdmitResult? Refusal) Check(KeyAdmitRequest r, ScopeAsk ask, ScopeState state, long minute, LimitScope scope)
    {
        if (ask.Rpm is not null || ask.Tpm is not null)
        {
            long requests = 0, tokens = 0;
            // Windows never move backwards, like the Redis store's (replicas' clocks may disagree slightly).
            if (state.Window >= minute)
            {
                minute = state.Window;
                requests = state.Requests;
                tokens = state.Tokens;
            }
            if (ask.Rpm is { } rpm && requests + 1 > rpm)
                return (minute, new KeyAdmitResult(KeyAdmitOutcome.RequestsPerMinuteExceeded, minute, requests, RefusedBy: scope,
                    TeamWindow: scope == LimitScope.Team ? minute : 0));
            if (ask.Tpm is { } tpm && tokens + r.EstimatedTokens > tpm)
                return (minute, new KeyAdmitResult(KeyAdmitOutcome.TokensPerMinuteExceeded, minute, tokens, RefusedBy: scope,
                    TeamWindow: scope == LimitScope.Team ? minute : 0));
        }
        if (ask.QuotaNanos is { } quota)
        {
            var q = state.Quota(ask.Period);
            var committed = q.SpentNanos + q.ReservedNanos;
            if (committed + r.ReserveNanos > quota || committed >= quota)
                return (minute, new KeyAdmitResult(KeyAdmitOutcome.QuotaExceeded, minute, 0, q.SpentNanos, q.ReservedNanos, RefusedBy: scope));
        }
        return (minute, null);
    }

    private static (long Spent, long Reserved) Charge(KeyAdmitRequest r, ScopeAsk ask, ScopeState state, long window, string? hold)
    {
        long spent = 0, reserved = 0;
        if (ask.QuotaNanos is not null)
        {
            var q = state.Quota(ask.Period);
            spent = q.SpentNanos;
            reserved = q.ReservedNanos;
            q.ReservedNanos += r.ReserveNanos;
            q.Holds.Add(hold!);
        }
        if (ask.Rpm is not null || ask.Tpm is not null)
        {
            if (state.Window < window)
            {
                state.Window = window;
                state.Requests = 0;
                state.Tokens = 0;
            }
            state.Requests++;
            state.Tokens += r.EstimatedTokens;
        }
        return (spent, reserved);
    }

    public ValueTask SettleAsync(KeySettlement s)
    {
        if (_scopes.TryGetValue(s.KeyId, out var keyState))
            Settle(s, keyState, s.KeyPeriod, s.Window, s.Team is null || s.KeyHoldsQuota);
        if (s.Team is { } team && _scopes.TryGetValue(team.ScopeId, out var teamState))
            Settle(s, teamState, team.Period, team.Window, team.HoldsQuota);
        return ValueTask.CompletedTask;
    }

    private static void Settle(KeySettlement s, ScopeState state, QuotaPeriod period, long? admittedWindow, bool holdsQuota)
    {
        lock (state.Gate)
        {
            if (holdsQuota && s.HoldId is not null && state.Quotas.TryGetValue(period.Start ?? long.MinValue, out var q) && q.Holds.Remove(s.HoldId))
            {
                q.ReservedNanos -= s.ReservedNanos;
                q.SpentNanos += s.ActualNanos;
            }
            if (admittedWindow is { } window && s.TokenDelta != 0)
            {
                var now = Windows.MinuteOf(s.NowUnixMs);
                if (state.Window == window && window >= now) state.Tokens = Math.Max(0, state.Tokens + s.TokenDelta);
                else if (s.TokenDelta > 0)
                {
                    // The admission's window is over: tokens produced since count in the current one.
                    if (state.Window >= now) state.Tokens += s.TokenDelta;
                    else
                    {
                        state.Window = now;
                        state.Requests = 0;
                        state.Tokens = s.TokenDelta;
                    }
                }
            }
        }
    }

    /// <summary>Settled spend and outstanding reservations of a key's (or team scope's) lifetime quota, in nano-USD (tests and diagnostics).</summary>
    public (long SpentNanos, long ReservedNanos) QuotaState(string keyId, QuotaPeriod period = default)
    {
        if (!_scopes.TryGetValue(keyId, out var state)) return (0, 0);
        lock (state.Gate)
        {
            return state.Quotas.TryGetValue(period.Start ?? long.MinValue, out var q) ? (q.SpentNanos, q.ReservedNanos) : (0, 0);
        }
    }
}
