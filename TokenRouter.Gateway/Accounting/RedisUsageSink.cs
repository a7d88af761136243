using System.Diagnostics.Metrics;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Polly;
using Polly.Retry;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Redis;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Accounting;

/// <summary>
/// Ships usage records to the Redis stream Admin drains (<see cref="RedisContract.UsageStream"/>, fields
/// <see cref="RedisContract.UsageFields"/>). <see cref="Record"/> only enqueues; a background loop appends batches.
/// </summary>
/// <remarks>
/// <para>Loss policy: records wait in memory while Redis is away (a batch is retried with backoff until it lands), up to
/// <see cref="Capacity"/> records (100 000 by default: minutes of traffic at hundreds of requests a second). Above
/// 80 % a warning is logged; only when the buffer is full are new records refused, counted in <see cref="Dropped"/>
/// and logged, never blocking the request and never evicting records already queued. Records still queued at shutdown
/// get a last flush of up to 10 seconds, after Kestrel has drained the requests in flight (the web host stops first).</para>
/// <para>Exactly once: each batch is appended by one script together with this instance's batch sequence number
/// (<see cref="RedisContract.UsageBatchSeqKey"/>); a batch retried after a timeout that did reach Redis is skipped.</para>
/// </remarks>
public sealed partial class RedisUsageSink : BackgroundService, IUsageSink
{
    public const int DefaultCapacity = 100_000;
    private const int MaxBatch = 256;
    private static readonly TimeSpan ShutdownFlushTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    // KEYS: stream, seq key. ARGV: batch seq, then per entry: n, and its n field/value arguments.
    private static readonly RedisScript AppendScript = new("""
        local last = tonumber(redis.call('GET', KEYS[2]) or '0')
        if tonumber(ARGV[1]) <= last then return 0 end
        local i = 2
        while i <= #ARGV do
          local n = tonumber(ARGV[i])
          redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n))
          i = i + 1 + n
        end
        redis.call('SET', KEYS[2], ARGV[1], 'EX', 86400)
        return 1
        """);

    private readonly IConnectionMultiplexer _redis;
    private readonly ILogger<RedisUsageSink> _logger;
    private readonly Channel<UsageRecord> _queue;
    private readonly RedisKey[] _keys;
    private readonly List<RedisValue> _arguments = []; // only the flush loop, one batch at a time, builds arguments
    private readonly ResiliencePipeline _appendRetry;
    private int _backlog;
    private long _dropped;
    private long _sequence;
    private int _highWater;
    private int _droppingLogged;

    private readonly IInFlightRequests? _admissions;
    private readonly TimeProvider _time;

    public RedisUsageSink(IConnectionMultiplexer redis, ILogger<RedisUsageSink> logger, IMeterFactory? meterFactory = null,
        int capacity = DefaultCapacity, TimeProvider? time = null, IInFlightRequests? admissions = null)
    {
        _admissions = admissions;
        _time = time ?? TimeProvider.System;
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _redis = redis;
        _logger = logger;
        Capacity = capacity;
        _queue = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of evicting a queued record
        });
        _keys = [RedisContract.UsageStream, RedisContract.UsageBatchSeqKey(Guid.NewGuid().ToString("N"))];
        // A batch is retried until it lands or the caller's token ends: 100 ms doubling to 5 s, jittered.
        _appendRetry = new ResiliencePipelineBuilder { TimeProvider = time ?? TimeProvider.System }
            .AddRetry(new RetryStrategyOptions
            {
                // StackExchange.Redis's timeouts are TimeoutExceptions, not RedisExceptions.
                ShouldHandle = new PredicateBuilder().Handle<RedisException>().Handle<TimeoutException>(),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = FirstBackoff,
                MaxDelay = MaxBackoff,
                OnRetry = args =>
                {
                    if (args.AttemptNumber == 0) LogOutage(args.Outcome.Exception!.GetType().Name, Backlog);
                    return default;
                },
            })
            .Build();
        if (meterFactory is not null)
        {
            var meter = meterFactory.Create(GatewayMetrics.MeterName);
            meter.CreateObservableGauge("tokenrouter.usage.backlog", () => Backlog, "{record}",
                "Usage records waiting to be written to the Redis usage stream.");
            meter.CreateObservableCounter("tokenrouter.usage.dropped", () => Dropped, "{record}",
                "Usage records refused because the backlog was full.");
        }
    }

    public int Capacity { get; }

    /// <summary>Records accepted but not yet in Redis (queued or in the batch being written).</summary>
    public int Backlog => Volatile.Read(ref _backlog);

    /// <summary>Records refused because the backlog was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Record(UsageRecord record)
    {
        var backlog = Interlocked.Increment(ref _backlog);
        if (!_queue.Writer.TryWrite(record))
        {
            Interlocked.Decrement(ref _backlog);
            Interlocked.Increment(ref _dropped);
            if (Interlocked.Exchange(ref _droppingLogged, 1) == 0) LogDropping(Capacity);
            return;
        }
        if (backlog >= Capacity / 5 * 4 && Interlocked.Exchange(ref _highWater, 1) == 0) LogBacklogHigh(backlog, Capacity);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<UsageRecord>(MaxBatch);
        var sequence = 0L;
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                Fill(batch);
                sequence = ++_sequence;
                await AppendAsync(batch, sequence, stoppingToken);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: one last flush below.
        }

        using var flush = new CancellationTokenSource(ShutdownFlushTimeout);
        try
        {
            // Requests Kestrel cut at the end of its drain are still recording their usage: let them finish first.
            if (_admissions is { Outstanding: > 0 })
            {
                if (!await _admissions.WaitUntilIdleAsync(_time, flush.Token)) LogAdmissionsOutstanding(_admissions.Outstanding);
                // The record follows the admission's disposal by a few instructions.
                else await Task.Delay(TimeSpan.FromMilliseconds(20), _time, flush.Token);
            }
            if (batch.Count > 0) await AppendAsync(batch, sequence, flush.Token); // the batch the stop interrupted
            batch.Clear();
            while (Fill(batch) > 0)
            {
                await AppendAsync(batch, ++_sequence, flush.Token);
                batch.Clear();
            }
        }
        catch (OperationCanceledException)
        {
            LogLostAtShutdown(Backlog);
        }
    }

    /// <summary>
    /// Waits for the last flush even when the host's shutdown budget is spent: Kestrel stops first and may use all of it
    /// draining requests in flight, whose usage must still reach Redis. The flush bounds itself (10 s).
    /// </summary>
    public override Task StopAsync(CancellationToken cancellationToken) => base.StopAsync(CancellationToken.None);

    private int Fill(List<UsageRecord> batch)
    {
        while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var record)) batch.Add(record);
        return batch.Count;
    }

    /// <summary>Writes one batch, retrying with backoff until it lands or <paramref name="ct"/> ends.</summary>
    private async Task AppendAsync(List<UsageRecord> batch, long sequence, CancellationToken ct)
    {
        var args = Arguments(batch, sequence, _arguments);
        var attempts = 0;
        try
        {
            await _appendRetry.ExecuteAsync(async _ =>
            {
                attempts++;
                await AppendOnceAsync(args);
            }, ct);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException && ct.IsCancellationRequested)
        {
            // Polly hands back the last failure when the token ends during an attempt; callers expect a cancellation.
            throw new OperationCanceledException(ct);
        }
        var failing = attempts > 1;
        var backlog = Interlocked.Add(ref _backlog, -batch.Count);
        if (failing) LogRecovered(backlog);
        if (backlog < Capacity / 2)
        {
            Volatile.Write(ref _highWater, 0);
            Volatile.Write(ref _droppingLogged, 0);
        }
    }

    /// <summary>One attempt at one batch; false when this batch sequence number was already appended.</summary>
    internal async Task<bool> AppendOnceAsync(RedisValue[] args) =>
        (int)await AppendScript.EvaluateAsync(_redis.GetDatabase(), _keys, args) == 1;

    /// <summary>The batch's script arguments, gathered in <paramref name="scratch"/> (the flush loop reuses one).</summary>
    internal static RedisValue[] Arguments(IReadOnlyList<UsageRecord> batch, long sequence, List<RedisValue>? scratch = null)
    {
        var args = scratch ?? [];
        args.Add(sequence);
        foreach (var record in batch) Write(args, record);
        // Exactly as long as the arguments: StackExchange.Redis sends every element of the array.
        RedisValue[] exact = [.. args];
        args.Clear();
        return exact;
    }

    /// <summary>
    /// One stream entry: its argument count, then field/value arguments with invariant-culture numbers. Fields at their
    /// neutral value are left out (the contract lets readers assume it): ~20 arguments instead of 42 for a plain request.
    /// </summary>
    internal static void Write(List<RedisValue> args, UsageRecord r)
    {
        var start = args.Count;
        args.Add(0);
        var u = r.Usage;
        Add(args, RedisContract.UsageFields.RequestId, r.RequestId);
        Add(args, RedisContract.UsageFields.KeyId, r.KeyId);
        Add(args, RedisContract.UsageFields.Model, r.Model);
        Add(args, RedisContract.UsageFields.Provider, r.Provider);
        Add(args, RedisContract.UsageFields.PromptTokens, u.PromptTokens);
        if (u.CachedReadTokens != 0) Add(args, RedisContract.UsageFields.CachedReadTokens, u.CachedReadTokens);
        if (u.CacheWrite5mTokens != 0) Add(args, RedisContract.UsageFields.CacheWrite5mTokens, u.CacheWrite5mTokens);
        if (u.CacheWrite1hTokens != 0) Add(args, RedisContract.UsageFields.CacheWrite1hTokens, u.CacheWrite1hTokens);
        Add(args, RedisContract.UsageFields.CompletionTokens, u.CompletionTokens);
        if (r.CostUsd is { } cost) Add(args, RedisContract.UsageFields.CostUsd, Usd(cost));
        if (r.CacheSavingsUsd != 0) Add(args, RedisContract.UsageFields.CacheSavingsUsd, Usd(r.CacheSavingsUsd));
        if (r.DedupSavingsUsd != 0) Add(args, RedisContract.UsageFields.DedupSavingsUsd, Usd(r.DedupSavingsUsd));
        if (r.Unpriced) Add(args, RedisContract.UsageFields.Unpriced, "1");
        if (r.Deduplicated) Add(args, RedisContract.UsageFields.Deduplicated, "1");
        if (r.Stream) Add(args, RedisContract.UsageFields.Stream, "1");
        Add(args, RedisContract.UsageFields.Status, r.Status);
        Add(args, RedisContract.UsageFields.LatencyMs, (long)Math.Round(r.LatencyMs, MidpointRounding.AwayFromZero));
        Add(args, RedisContract.UsageFields.TimestampUnixMs, r.Timestamp.ToUnixTimeMilliseconds());
        if (r.Estimated) Add(args, RedisContract.UsageFields.Estimated, "1");
        if (!string.IsNullOrEmpty(r.Tags)) Add(args, RedisContract.UsageFields.Tags, r.Tags);
        if (!string.IsNullOrEmpty(r.EndUser)) Add(args, RedisContract.UsageFields.EndUser, r.EndUser);
        args[start] = args.Count - start - 1;

        static void Add(List<RedisValue> args, string field, RedisValue value)
        {
            args.Add(field);
            args.Add(value);
        }
    }

    private static string Usd(decimal value) =>
        value == 0 ? "0" : value.ToString("0.############################", CultureInfo.InvariantCulture);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis usage stream unavailable ({Error}); buffering usage records in memory (backlog {Backlog}) and retrying")]
    private partial void LogOutage(string error, int backlog);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis usage stream reachable again; backlog now {Backlog}")]
    private partial void LogRecovered(int backlog);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Usage backlog at {Backlog} of {Capacity} records: Redis is not keeping up or is away")]
    private partial void LogBacklogHigh(int backlog, int capacity);

    [LoggerMessage(Level = LogLevel.Error, Message = "Usage backlog full ({Capacity} records): new usage records are dropped until Redis catches up")]
    private partial void LogDropping(int capacity);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shutdown: {Count} requests still had not recorded their usage when the flush began")]
    private partial void LogAdmissionsOutstanding(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Shutdown: {Backlog} usage records could not be written to Redis in time and are lost")]
    private partial void LogLostAtShutdown(int backlog);
}

public static class RedisUsageSinkServiceCollectionExtensions
{
    /// <summary>
    /// Replaces the <see cref="IUsageSink"/> with <see cref="RedisUsageSink"/> (also a hosted service, and resolvable as
    /// itself for its <see cref="RedisUsageSink.Backlog"/>). Needs an <see cref="IConnectionMultiplexer"/>.
    /// </summary>
    public static IServiceCollection AddRedisUsageSink(this IServiceCollection services)
    {
        services.TryAddSingleton(sp => new RedisUsageSink(
            sp.GetRequiredService<IConnectionMultiplexer>(), sp.GetRequiredService<ILogger<RedisUsageSink>>(),
            sp.GetService<IMeterFactory>(), time: sp.GetService<TimeProvider>(), admissions: sp.GetService<IInFlightRequests>()));
        services.Replace(ServiceDescriptor.Singleton<IUsageSink>(sp => sp.GetRequiredService<RedisUsageSink>()));
        services.AddHostedService(sp => sp.GetRequiredService<RedisUsageSink>());
        return services;
    }
}
