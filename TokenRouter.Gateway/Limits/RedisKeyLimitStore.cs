using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Polly;
using Polly.Retry;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Redis;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// Per-key (and per-team) RPM/TPM windows and quotas shared by all gateway replicas (layout: <see cref="RedisContract"/>). Each
/// admission and each settlement is one Lua script, so checks and charges are atomic across replicas: concurrent
/// requests can never push a window past its limit or spend + reservations past a quota. A key in a team is checked and
/// charged together with its team in the same script: neither budget can be overshot through any number of replicas.
/// </summary>
/// <remarks>
/// <para>With a team the script touches the key's and the team's hashes, which carry different hash tags: it needs a single
/// Redis (or a cluster that keeps them on one node).</para>
/// <para>
/// Windows are fixed unix minutes taken from the gateway's clock; a window never moves backwards (a replica whose
/// clock lags joins the newer window), so replicas agree on one counter per key. A settlement is idempotent per
/// reservation (the hold is removed once); a settlement that could not reach Redis is retried in the background.
/// </para>
/// </remarks>
public sealed partial class RedisKeyLimitStore : IKeyLimitStore, IAsyncDisposable, IDisposable
{
    private const int MaxPendingSettlements = 100_000;
    private const int MaxCachedKeys = 10_000;

    // One or two scopes (the key, then its team). KEYS per scope: rate hash, quota hash, holds zset.
    // ARGV: [1] now ms, [2] estimated tokens, [3] reserve nanos, [4] hold member, [5] hold expiry ms, [6] current minute,
    // then per scope: rpm, tpm (-1 = none), quota nanos (-1 = none), quota expire-at ms (0 = the lifetime hash, no expiry).
    // Every scope is checked before any is charged, so a refusal by either charges neither. Returns
    // {outcome, scope, used, spent, reserved, window1, spent2, reserved2, window2}: on refusal the refusing scope's
    // numbers; on admission the key's spent/reserved (and the team's in spent2/reserved2) as found before this admission.
    // Numbers written back are ARGV strings, small integers or formatted with %.0f: Lua's number-to-string would turn
    // large ones into 1e+15. Each redis.call costs Redis CPU beyond the command itself (~0.3-0.6 µs measured), so a
    // window that exists is updated with one HSET of what was read, and its expiry (two minutes, longer than the minute
    // it counts) is set once, when it is created. For the same reason expired holds are swept
    // only once the quota hash's 'x' has passed: no hold expires before it (it is lowered when a hold that expires
    // earlier is added, and after a sweep it is the earliest hold left), so a sweep runs about once per hold TTL, not
    // once per request; a hash without 'x' (new, or written by an older gateway) is swept at once.
    private static readonly RedisScript AdmitScript = new("""
        local n = #KEYS / 3
        local est = tonumber(ARGV[2])
        local reserve = tonumber(ARGV[3])
        local now = tonumber(ARGV[6])
        local windows, fresh, counts, qs, qr, earliest, stored = {}, {}, {}, {}, {}, {}, {}
        for s = 1, n do
          local k = (s - 1) * 3
          local a = 6 + (s - 1) * 4
          local rpm = tonumber(ARGV[a + 1])
          local tpm = tonumber(ARGV[a + 2])
          local quota = tonumber(ARGV[a + 3])
          windows[s] = now
          fresh[s] = true
          qs[s], qr[s] = '0', '0'
          if rpm >= 0 or tpm >= 0 then
            local cur = redis.call('HMGET', KEYS[k + 1], 'w', 'r', 't')
            local w = tonumber(cur[1])
            local r, t = 0, 0
            if w and w >= now then
              windows[s] = w
              fresh[s] = false
              r = tonumber(cur[2]) or 0
              t = tonumber(cur[3]) or 0
            end
            counts[s] = {r, t}
            if rpm >= 0 and r + 1 > rpm then return {1, s, r, '0', '0', windows[s], '0', '0', 0} end
            if tpm >= 0 and t + est > tpm then return {2, s, t, '0', '0', windows[s], '0', '0', 0} end
          end
          if quota >= 0 then
            local q = redis.call('HMGET', KEYS[k + 2], 'spent', 'reserved', 'x')
            earliest[s], stored[s] = q[3], q[3]
            if not tonumber(q[3]) or tonumber(q[3]) <= tonumber(ARGV[1]) then
              local expired = redis.call('ZRANGEBYSCORE', KEYS[k + 3], '-inf', ARGV[1], 'LIMIT', 0, 100)
              for i = 1, #expired do
                redis.call('ZREM', KEYS[k + 3], expired[i])
                local amount = string.match(expired[i], ':(%d+)$')
                if amount and amount ~= '0' then redis.call('HINCRBY', KEYS[k + 2], 'reserved', '-' .. amount) end
              end
              earliest[s] = redis.call('ZRANGE', KEYS[k + 3], 0, 0, 'WITHSCORES')[2] or false
              if #expired > 0 then q = redis.call('HMGET', KEYS[k + 2], 'spent', 'reserved') end
            end
            local spent = tonumber(q[1]) or 0
            local reserved = tonumber(q[2]) or 0
            if spent + reserved + reserve > quota or spent + reserved >= quota then
              return {3, s, 0, q[1] or '0', q[2] or '0', windows[s], '0', '0', 0}
            end
            qs[s], qr[s] = q[1] or '0', q[2] or '0'
          end
        end
        for s = 1, n do
          local k = (s - 1) * 3
          local a = 6 + (s - 1) * 4
          if tonumber(ARGV[a + 3]) >= 0 then
            if reserve > 0 then redis.call('HINCRBY', KEYS[k + 2], 'reserved', ARGV[3]) end
            redis.call('ZADD', KEYS[k + 3], ARGV[5], ARGV[4])
            local x = earliest[s]
            if not tonumber(x) or tonumber(ARGV[5]) < tonumber(x) then x = ARGV[5] end
            if x ~= stored[s] then redis.call('HSET', KEYS[k + 2], 'x', x) end
            if ARGV[a + 4] ~= '0' then
              redis.call('PEXPIREAT', KEYS[k + 2], ARGV[a + 4])
              redis.call('PEXPIREAT', KEYS[k + 3], ARGV[a + 4])
            end
          end
          if tonumber(ARGV[a + 1]) >= 0 or tonumber(ARGV[a + 2]) >= 0 then
            if fresh[s] then
              redis.call('HSET', KEYS[k + 1], 'w', ARGV[6], 'r', 1, 't', ARGV[2])
              redis.call('PEXPIRE', KEYS[k + 1], 120000)
            elseif est > 0 then
              redis.call('HSET', KEYS[k + 1], 'r', counts[s][1] + 1, 't', string.format('%.0f', counts[s][2] + est))
            else
              redis.call('HINCRBY', KEYS[k + 1], 'r', 1)
            end
          end
        end
        return {0, 0, 0, qs[1], qr[1], windows[1], qs[2] or '0', qr[2] or '0', windows[2] or now}
        """);

    // One or two scopes, as for admission. KEYS per scope: rate hash, quota hash, holds zset.
    // ARGV: [1] hold member ('' = none), [2] reserved nanos, [3] actual nanos, [4] first attempt ('1'/'0'),
    // [5] token delta, [6] current minute, then per scope: admission window ('-1' = no TPM), quota expire-at ms (0 = none),
    // whether the scope holds quota ('1'/'0').
    // A hold starting with '~' was made while Redis was down (DegradableKeyLimitStore) and is booked exactly once.
    // A retry applies only what the hold proves was not applied yet; a first attempt whose hold already expired still
    // books the spend (the request ran longer than the reservation TTL, but it did cost that). Each scope decides alone.
    // A window that is still current needs no new expiry: it got two minutes when it opened.
    private static readonly RedisScript SettleScript = new("""
        local n = #KEYS / 3
        for s = 1, n do
          local k = (s - 1) * 3
          local a = 6 + (s - 1) * 3
          local applied = ARGV[4] == '1'
          if ARGV[1] ~= '' and ARGV[a + 3] == '1' then
            if string.sub(ARGV[1], 1, 1) == '~' then
              -- Admitted while Redis was down (no reservation here): book it once, remembered for a day by a tombstone
              -- (amount 0, so the expiry sweep releases nothing).
              applied = redis.call('ZADD', KEYS[k + 3], 'NX', (tonumber(ARGV[6]) + 1440) * 60000, ARGV[1]) == 1
            elseif redis.call('ZREM', KEYS[k + 3], ARGV[1]) == 1 then
              applied = true
              if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[k + 2], 'reserved', '-' .. ARGV[2]) end
            end
            if applied and ARGV[3] ~= '0' then
              redis.call('HINCRBY', KEYS[k + 2], 'spent', ARGV[3])
              if ARGV[a + 2] ~= '0' then redis.call('PEXPIREAT', KEYS[k + 2], ARGV[a + 2]) end
            end
          end
          local admitted = tonumber(ARGV[a + 1])
          local delta = tonumber(ARGV[5])
          if applied and admitted >= 0 and delta ~= 0 then
            local w = tonumber(redis.call('HGET', KEYS[k + 1], 'w'))
            local now = tonumber(ARGV[6])
            if w == admitted and w >= now then
              if redis.call('HINCRBY', KEYS[k + 1], 't', ARGV[5]) < 0 then redis.call('HSET', KEYS[k + 1], 't', 0) end
            elseif delta > 0 then
              if w and w >= now then
                redis.call('HINCRBY', KEYS[k + 1], 't', ARGV[5])
              else
                redis.call('HSET', KEYS[k + 1], 'w', ARGV[6], 'r', 0, 't', ARGV[5])
                redis.call('PEXPIRE', KEYS[k + 1], 120000)
              end
            end
          end
        end
        return 1
        """);

    private readonly IConnectionMultiplexer _redis;
    private readonly ILogger<RedisKeyLimitStore> _logger;
    private readonly string _instance = Guid.NewGuid().ToString("N")[..12];
    private readonly Channel<(KeySettlement Settlement, bool FirstAttempt)> _pending = Channel.CreateBounded<(KeySettlement, bool)>(
        new BoundedChannelOptions(MaxPendingSettlements) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _stopping = new();
    private readonly ResiliencePipeline _settleRetry;
    private readonly Task _retryLoop;
    private readonly ConcurrentDictionary<(string KeyId, long? KeyStart, string? TeamScope, long? TeamStart), RedisKey[]> _keys = new();
    private long _holdSequence;
    private int _outage;

    public RedisKeyLimitStore(IConnectionMultiplexer redis, ILogger<RedisKeyLimitStore> logger, TimeProvider? time = null)
    {
        _redis = redis;
        _logger = logger;
        // Deferred settlements are drained until Redis answers: 200 ms doubling to 5 s (jittered) between failed rounds.
        _settleRetry = new ResiliencePipelineBuilder { TimeProvider = time ?? TimeProvider.System }
            .AddRetry(new RetryStrategyOptions
            {
                // StackExchange.Redis's timeouts are TimeoutExceptions, not RedisExceptions.
                ShouldHandle = new PredicateBuilder().Handle<RedisException>().Handle<TimeoutException>(),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(5),
            })
            .Build();
        _retryLoop = Task.Run(RetryPendingAsync);
    }

    /// <summary>Settlements waiting for Redis to come back.</summary>
    public int PendingSettlements => _pending.Reader.Count;

    public async ValueTask<KeyAdmitResult> AdmitAsync(KeyAdmitRequest r)
    {
        var holdsQuota = r.QuotaNanos is not null || r.Team?.QuotaNanos is not null;
        var hold = holdsQuota
            ? string.Create(CultureInfo.InvariantCulture, $"{_instance}-{Interlocked.Increment(ref _holdSequence)}:{r.ReserveNanos}")
            : "";
        var minute = Windows.MinuteOf(r.NowUnixMs);
        var team = r.Team;
        RedisValue[] args = team is null ? new RedisValue[10] : new RedisValue[14];
        args[0] = r.NowUnixMs;
        args[1] = r.EstimatedTokens;
        args[2] = r.ReserveNanos;
        args[3] = hold;
        args[4] = r.NowUnixMs + (long)r.HoldTtl.TotalMilliseconds;
        args[5] = minute;
        args[6] = r.RequestsPerMinute ?? -1;
        args[7] = r.TokensPerMinute ?? -1;
        args[8] = r.QuotaNanos ?? -1;
        args[9] = r.KeyPeriod.ExpireAtUnixMs;
        if (team is not null)
        {
            args[10] = team.RequestsPerMinute ?? -1;
            args[11] = team.TokensPerMinute ?? -1;
            args[12] = team.QuotaNanos ?? -1;
            args[13] = team.Period.ExpireAtUnixMs;
        }
        var result = await AdmitScript.EvaluateAsync(_redis.GetDatabase(),
            Keys(r.KeyId, r.KeyPeriod, team?.ScopeId, team?.Period ?? default), args);
        var reply = (RedisResult[])result!;
        var outcome = (KeyAdmitOutcome)(int)reply[0];
        if (outcome != KeyAdmitOutcome.Admitted)
        {
            var scope = (int)reply[1] == 2 ? LimitScope.Team : LimitScope.Key;
            var window = (long)reply[5];
            return new KeyAdmitResult(outcome, window, (long)reply[2], (long)reply[3], (long)reply[4], null, scope,
                scope == LimitScope.Team ? window : 0);
        }
        return new KeyAdmitResult(outcome, (long)reply[5], 0, (long)reply[3], (long)reply[4], hold.Length > 0 ? hold : null,
            LimitScope.Key, (long)reply[8], (long)reply[6], (long)reply[7]);
    }

    public async ValueTask SettleAsync(KeySettlement s)
    {
        if (!_redis.IsConnected)
        {
            // Known outage: queue it now rather than wait for the client's timeout (the script was never sent).
            if (Interlocked.Exchange(ref _outage, 1) == 0) LogSettleDeferred(nameof(RedisConnectionException));
            if (!_pending.Writer.TryWrite((s, true))) LogSettleLost(s.ActualNanos);
            return;
        }
        try
        {
            await EvaluateSettleAsync(s, firstAttempt: true);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            if (Interlocked.Exchange(ref _outage, 1) == 0) LogSettleDeferred(ex.GetType().Name);
            // A connection error means the script was never sent, so the retry may still count as the first attempt;
            // after a timeout it may have run, and only the hold can tell.
            if (!_pending.Writer.TryWrite((s, ex is RedisConnectionException))) LogSettleLost(s.ActualNanos);
        }
    }

    private Task<RedisResult> EvaluateSettleAsync(KeySettlement s, bool firstAttempt)
    {
        var team = s.Team;
        RedisValue[] args = team is null ? new RedisValue[9] : new RedisValue[12];
        args[0] = s.HoldId ?? "";
        args[1] = s.ReservedNanos;
        args[2] = s.ActualNanos;
        args[3] = firstAttempt ? "1" : "0";
        args[4] = s.TokenDelta;
        args[5] = Windows.MinuteOf(s.NowUnixMs);
        args[6] = s.Window ?? -1;
        args[7] = s.KeyPeriod.ExpireAtUnixMs;
        // Without a team every hold is the key's (its quota, or a degraded admission's tombstone).
        args[8] = team is null || s.KeyHoldsQuota ? "1" : "0";
        if (team is not null)
        {
            args[9] = team.Window ?? -1;
            args[10] = team.Period.ExpireAtUnixMs;
            args[11] = team.HoldsQuota ? "1" : "0";
        }
        return SettleScript.EvaluateAsync(_redis.GetDatabase(), Keys(s.KeyId, s.KeyPeriod, team?.ScopeId, team?.Period ?? default), args);
    }

    private async Task RetryPendingAsync()
    {
        var token = _stopping.Token;
        try
        {
            // The back-off starts afresh with each new batch of deferred settlements, and not after each one that lands.
            while (await _pending.Reader.WaitToReadAsync(token))
            {
                await _settleRetry.ExecuteAsync(static (store, _) => store.DrainPendingAsync(), this, token);
            }
        }
        catch (Exception e) when ((e is OperationCanceledException or RedisException or TimeoutException) && token.IsCancellationRequested)
        {
            // Shutting down (Polly hands back the last Redis failure when the token ends during an attempt).
        }
    }

    /// <summary>Settles the queued settlements in order; throws the first Redis failure, leaving the rest queued.</summary>
    private async ValueTask DrainPendingAsync()
    {
        while (_pending.Reader.TryPeek(out var item))
        {
            try
            {
                await EvaluateSettleAsync(item.Settlement, item.FirstAttempt);
                _pending.Reader.TryRead(out _);
                if (_pending.Reader.Count == 0 && Interlocked.Exchange(ref _outage, 0) == 1) LogSettleRecovered();
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException && ex is not RedisConnectionException && item.FirstAttempt)
            {
                // It may have run this time: from now on only the hold decides.
                _pending.Reader.TryRead(out _);
                _pending.Writer.TryWrite((item.Settlement, false));
                throw;
            }
        }
    }

    /// <summary>
    /// The scopes' Redis keys, built once per key, team and budget period: every admission and settlement needs three
    /// or six, and building them each time was six strings and an array per call. StackExchange.Redis only reads them.
    /// </summary>
    private RedisKey[] Keys(string keyId, QuotaPeriod keyPeriod, string? teamScope, QuotaPeriod teamPeriod)
    {
        var id = (keyId, keyPeriod.Start, teamScope, teamScope is null ? null : teamPeriod.Start);
        if (_keys.TryGetValue(id, out var keys)) return keys;
        keys = teamScope is null
            ? [RedisContract.RateKey(keyId), RedisContract.QuotaKey(keyId, keyPeriod.Start), RedisContract.QuotaHoldsKey(keyId, keyPeriod.Start)]
            :
            [
                RedisContract.RateKey(keyId), RedisContract.QuotaKey(keyId, keyPeriod.Start), RedisContract.QuotaHoldsKey(keyId, keyPeriod.Start),
                RedisContract.RateKey(teamScope), RedisContract.QuotaKey(teamScope, teamPeriod.Start),
                RedisContract.QuotaHoldsKey(teamScope, teamPeriod.Start),
            ];
        if (_keys.Count >= MaxCachedKeys) _keys.Clear(); // bounded: old periods and deleted keys fall out wholesale
        _keys[id] = keys;
        return keys;
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync();
        await _retryLoop;
        if (_pending.Reader.Count > 0) LogPendingAtShutdown(_pending.Reader.Count);
    }

    // A container disposed synchronously must not throw for an async-only singleton; the loop ends on its own.
    public void Dispose()
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        if (_pending.Reader.Count > 0) LogPendingAtShutdown(_pending.Reader.Count);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not settle requests' quota/TPM in Redis ({Error}); retrying in the background until it answers")]
    private partial void LogSettleDeferred(string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis answers again: deferred quota/TPM settlements are booked")]
    private partial void LogSettleRecovered();

    [LoggerMessage(Level = LogLevel.Error, Message = "Settlement backlog full: a settled cost of {Nanos} nano-USD was not booked; its reservation expires by itself")]
    private partial void LogSettleLost(long nanos);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} quota settlements were still waiting for Redis at shutdown; their reservations expire by themselves")]
    private partial void LogPendingAtShutdown(int count);
}
