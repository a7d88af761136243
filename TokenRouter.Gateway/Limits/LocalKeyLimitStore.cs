using System.Collections.Concurrent;
using System.Globalization;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// Embedded mode (no Redis): the same per-key windows and quota semantics as <see cref="RedisKeyLimitStore"/>, under a
/// lock per key. Nothing survives a restart, and nothing outlives this process, so reservations need no expiry.
/// </summary>
public sealed class LocalKeyLimitStore : IKeyLimitStore
{
    private readonly ConcurrentDictionary<string, KeyState> _keys = new(StringComparer.Ordinal);
    private long _holdSequence;

    private sealed class KeyState
    {
        public readonly Lock Gate = new();
        public long Window = long.MinValue;
        public long Requests;
        public long Tokens;
        public long SpentNanos;
        public long ReservedNanos;
        public readonly HashSet<string> Holds = new(StringComparer.Ordinal);
    }

    public ValueTask<KeyAdmitResult> AdmitAsync(KeyAdmitRequest r)
    {
        var state = _keys.GetOrAdd(r.KeyId, static _ => new KeyState());
        var rated = r.RequestsPerMinute is not null || r.TokensPerMinute is not null;
        var minute = Windows.MinuteOf(r.NowUnixMs);
        lock (state.Gate)
        {
            long requests = 0, tokens = 0;
            if (rated)
            {
                // Windows never move backwards, like the Redis store's (replicas' clocks may disagree slightly).
                if (state.Window >= minute)
                {
                    minute = state.Window;
                    requests = state.Requests;
                    tokens = state.Tokens;
                }
                if (r.RequestsPerMinute is { } rpm && requests + 1 > rpm)
                    return ValueTask.FromResult(new KeyAdmitResult(KeyAdmitOutcome.RequestsPerMinuteExceeded, minute, requests));
                if (r.TokensPerMinute is { } tpm && tokens + r.EstimatedTokens > tpm)
                    return ValueTask.FromResult(new KeyAdmitResult(KeyAdmitOutcome.TokensPerMinuteExceeded, minute, tokens));
            }

            string? hold = null;
            if (r.QuotaNanos is { } quota)
            {
                var committed = state.SpentNanos + state.ReservedNanos;
                if (committed + r.ReserveNanos > quota || committed >= quota)
                    return ValueTask.FromResult(new KeyAdmitResult(KeyAdmitOutcome.QuotaExceeded, minute, 0, state.SpentNanos, state.ReservedNanos));
                state.ReservedNanos += r.ReserveNanos;
                hold = Interlocked.Increment(ref _holdSequence).ToString(CultureInfo.InvariantCulture);
                state.Holds.Add(hold);
            }

            if (rated)
            {
                state.Window = minute;
                state.Requests = requests + 1;
                state.Tokens = tokens + r.EstimatedTokens;
            }
            return ValueTask.FromResult(new KeyAdmitResult(KeyAdmitOutcome.Admitted, minute, HoldId: hold));
        }
    }

    public ValueTask SettleAsync(KeySettlement s)
    {
        if (!_keys.TryGetValue(s.KeyId, out var state)) return ValueTask.CompletedTask;
        lock (state.Gate)
        {
            if (s.HoldId is not null && state.Holds.Remove(s.HoldId))
            {
                state.ReservedNanos -= s.ReservedNanos;
                state.SpentNanos += s.ActualNanos;
            }
            if (s.Window is { } window && s.TokenDelta != 0)
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
        return ValueTask.CompletedTask;
    }

    /// <summary>Settled spend and outstanding reservations of a key, in nano-USD (tests and diagnostics).</summary>
    public (long SpentNanos, long ReservedNanos) QuotaState(string keyId)
    {
        if (!_keys.TryGetValue(keyId, out var state)) return (0, 0);
        lock (state.Gate) return (state.SpentNanos, state.ReservedNanos);
    }
}
