using System.Globalization;
using System.Threading.Channels;
using Polly;
using Polly.Retry;
using StackExchange.Redis;
using TokenRouter.Contracts;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// Per-key RPM/TPM windows and quotas shared by all gateway replicas (layout: <see cref="RedisContract"/>). Each
/// admission and each settlement is one Lua script, so checks and charges are atomic across replicas: concurrent
/// requests can never push a window past its limit or spend + reservations past a quota.
/// </summary>
/// <remarks>
/// Windows are fixed unix minutes taken from the gateway's clock; a window never moves backwards (a replica whose
/// clock lags joins the newer window), so replicas agree on one counter per key. A settlement is idempotent per
/// reservation (the hold is removed once); a settlement that could not reach Redis is retried in the background.
/// </remarks>
public sealed partial class RedisKeyLimitStore : IKeyLimitStore, IAsyncDisposable, IDisposable
{
    private const int MaxPendingSettlements = 100_000;

    // KEYS: rate hash, quota hash, holds zset. ARGV: now ms, rpm, tpm (-1 = none), estimated tokens, quota nanos (-1 =
    // none), reserve nanos, hold member, hold expiry ms, current minute. Returns {outcome, window, used, spent, reserved}
    // (spent and reserved as found before this admission, when a quota applies).
    // Numbers written back are ARGV strings or small integers: Lua's number-to-string would turn large ones into 1e+15.
    private const string AdmitScript = """
        local rpm = tonumber(ARGV[2])
        local tpm = tonumber(ARGV[3])
        local est = tonumber(ARGV[4])
        local quota = tonumber(ARGV[5])
        local reserve = tonumber(ARGV[6])
        local rated = rpm >= 0 or tpm >= 0
        local minute = tonumber(ARGV[9])
        local window = ARGV[9]
        local fresh = true
        local r, t = 0, 0
        local qs, qr = '0', '0'
        if rated then
          local cur = redis.call('HMGET', KEYS[1], 'w', 'r', 't')
          local w = tonumber(cur[1])
          if w and w >= minute then
            minute = w
            window = cur[1]
            fresh = false
            r = tonumber(cur[2]) or 0
            t = tonumber(cur[3]) or 0
          end
          if rpm >= 0 and r + 1 > rpm then return {1, minute, r, 0, 0} end
          if tpm >= 0 and t + est > tpm then return {2, minute, t, 0, 0} end
        end
        if quota >= 0 then
          local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, 100)
          for i = 1, #expired do
            redis.call('ZREM', KEYS[3], expired[i])
            local amount = string.match(expired[i], ':(%d+)$')
            if amount and amount ~= '0' then redis.call('HINCRBY', KEYS[2], 'reserved', '-' .. amount) end
          end
          local q = redis.call('HMGET', KEYS[2], 'spent', 'reserved')
          local spent = tonumber(q[1]) or 0
          local reserved = tonumber(q[2]) or 0
          if spent + reserved + reserve > quota or spent + reserved >= quota then
            return {3, minute, 0, q[1] or '0', q[2] or '0'}
          end
          qs, qr = q[1] or '0', q[2] or '0'
          if reserve > 0 then redis.call('HINCRBY', KEYS[2], 'reserved', ARGV[6]) end
          redis.call('ZADD', KEYS[3], ARGV[8], ARGV[7])
        end
        if rated then
          if fresh then
            redis.call('HSET', KEYS[1], 'w', window, 'r', 1, 't', ARGV[4])
          else
            redis.call('HINCRBY', KEYS[1], 'r', 1)
            if est > 0 then redis.call('HINCRBY', KEYS[1], 't', ARGV[4]) end
          end
          redis.call('PEXPIRE', KEYS[1], 120000)
        end
        return {0, minute, 0, qs, qr}
        """;

    // KEYS: rate hash, quota hash, holds zset. ARGV: hold member ('' = none), reserved nanos, actual nanos,
    // first attempt ('1'/'0'), admission window ('-1' = no TPM), token delta, current minute.
    // A hold starting with '~' was made while Redis was down (DegradableKeyLimitStore) and is booked exactly once.
    // A retry applies only what the hold proves was not applied yet; a first attempt whose hold already expired still
    // books the spend (the request ran longer than the reservation TTL, but it did cost that).
    private const string SettleScript = """
        local applied = ARGV[4] == '1'
        if ARGV[1] ~= '' then
          if string.sub(ARGV[1], 1, 1) == '~' then
            -- Admitted while Redis was down (no reservation here): book it once, remembered for a day by a tombstone
            -- (amount 0, so the expiry sweep releases nothing).
            applied = redis.call('ZADD', KEYS[3], 'NX', (tonumber(ARGV[7]) + 1440) * 60000, ARGV[1]) == 1
          elseif redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
            applied = true
            if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[2], 'reserved', '-' .. ARGV[2]) end
          end
          if applied and ARGV[3] ~= '0' then redis.call('HINCRBY', KEYS[2], 'spent', ARGV[3]) end
        end
        local admitted = tonumber(ARGV[5])
        local delta = tonumber(ARGV[6])
        if applied and admitted >= 0 and delta ~= 0 then
          local w = tonumber(redis.call('HGET', KEYS[1], 'w'))
          local now = tonumber(ARGV[7])
          if w == admitted and w >= now then
            if redis.call('HINCRBY', KEYS[1], 't', ARGV[6]) < 0 then redis.call('HSET', KEYS[1], 't', 0) end
            redis.call('PEXPIRE', KEYS[1], 120000)
          elseif delta > 0 then
            if w and w >= now then
              redis.call('HINCRBY', KEYS[1], 't', ARGV[6])
            else
              redis.call('HSET', KEYS[1], 'w', ARGV[7], 'r', 0, 't', ARGV[6])
            end
            redis.call('PEXPIRE', KEYS[1], 120000)
          end
        end
        return 1
        """;

    private readonly IConnectionMultiplexer _redis;
    private readonly ILogger<RedisKeyLimitStore> _logger;
    private readonly string _instance = Guid.NewGuid().ToString("N")[..12];
    private readonly Channel<(KeySettlement Settlement, bool FirstAttempt)> _pending = Channel.CreateBounded<(KeySettlement, bool)>(
        new BoundedChannelOptions(MaxPendingSettlements) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly CancellationTokenSource _stopping = new();
    private readonly ResiliencePipeline _settleRetry;
    private readonly Task _retryLoop;
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
                ShouldHandle = new PredicateBuilder().Handle<RedisException>(),
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
        var hold = r.QuotaNanos is null
            ? ""
            : string.Create(CultureInfo.InvariantCulture, $"{_instance}-{Interlocked.Increment(ref _holdSequence)}:{r.ReserveNanos}");
        var minute = Windows.MinuteOf(r.NowUnixMs);
        var result = await _redis.GetDatabase().ScriptEvaluateAsync(AdmitScript, Keys(r.KeyId),
        [
            r.NowUnixMs,
            r.RequestsPerMinute ?? -1,
            r.TokensPerMinute ?? -1,
            r.EstimatedTokens,
            r.QuotaNanos ?? -1,
            r.ReserveNanos,
            hold,
            r.NowUnixMs + (long)r.HoldTtl.TotalMilliseconds,
            minute,
        ]);
        var reply = (RedisResult[])result!;
        var outcome = (KeyAdmitOutcome)(int)reply[0];
        return new KeyAdmitResult(outcome, (long)reply[1], (long)reply[2], (long)reply[3], (long)reply[4],
            outcome == KeyAdmitOutcome.Admitted && hold.Length > 0 ? hold : null);
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
        catch (RedisException ex)
        {
            if (Interlocked.Exchange(ref _outage, 1) == 0) LogSettleDeferred(ex.GetType().Name);
            // A connection error means the script was never sent, so the retry may still count as the first attempt;
            // after a timeout it may have run, and only the hold can tell.
            if (!_pending.Writer.TryWrite((s, ex is RedisConnectionException))) LogSettleLost(s.ActualNanos);
        }
    }

    private Task<RedisResult> EvaluateSettleAsync(KeySettlement s, bool firstAttempt) =>
        _redis.GetDatabase().ScriptEvaluateAsync(SettleScript, Keys(s.KeyId),
        [
            s.HoldId ?? "",
            s.ReservedNanos,
            s.ActualNanos,
            firstAttempt ? "1" : "0",
            s.Window ?? -1,
            s.TokenDelta,
            Windows.MinuteOf(s.NowUnixMs),
        ]);

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
        catch (Exception e) when ((e is OperationCanceledException or RedisException) && token.IsCancellationRequested)
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
            catch (RedisException ex) when (ex is not RedisConnectionException && item.FirstAttempt)
            {
                // It may have run this time: from now on only the hold decides.
                _pending.Reader.TryRead(out _);
                _pending.Writer.TryWrite((item.Settlement, false));
                throw;
            }
        }
    }

    private static RedisKey[] Keys(string keyId) =>
        [RedisContract.RateKey(keyId), RedisContract.QuotaKey(keyId), RedisContract.QuotaHoldsKey(keyId)];

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
