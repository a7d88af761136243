using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// Coalesces identical in-flight requests across gateway replicas through Redis (keys and entry format:
/// <see cref="RedisContract"/>, "Dedup across replicas").
/// </summary>
/// <remarks>
/// <para>Claim: <c>SET owner {claim} NX PX lease</c> (a script that returns the current owner when it fails, so a follower
/// knows which claim's stream to read). The leader's <see cref="RedisExchangePublisher"/> appends the response to that
/// claim's stream once a follower announces itself on this replica's leader channel (or the sweep sees one registered);
/// a background sweep renews the lease of every running call (every third of the lease, at most every second) and the
/// registrations of every follower. At the end the leader deletes its claim and the stream expires. A call nobody
/// followed writes no stream: its end is one script that deletes the claim unless a follower registered meanwhile or
/// found the request claimed and is about to register (then the whole response is written after all).</para>
/// <para>Followers read the stream with non-blocking XREAD (a blocking read would stall the shared multiplexer) whenever
/// the leader's pub/sub wake-up message after each write arrives, and otherwise poll with back-off (2 ms, doubling to
/// <see cref="RedisDedupOptions.MaxPollInterval"/>) in case a message is lost. When nothing arrives for <see cref="RedisDedupOptions.LeaderWait"/>
/// and the claim is no longer the leader's (the lease ran out: it died), a follower that has received nothing yet
/// claims the request itself and makes the call, publishing it in turn (or follows whoever claimed first); one that is
/// mid-response fails with 502, since a response cannot be resumed. A leader shutting down hands off at once.</para>
/// </remarks>
public sealed partial class RedisDedupBroker : IDedupBroker, IAsyncDisposable
{
    private static readonly TimeSpan MinPoll = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan MaxOwnerCheckInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan HandOffTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan[] RetryDelays = [TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(1)];
    private const int ReadBatch = 256;
    private const int MaxGenerations = 4;

    private readonly IConnectionMultiplexer _redis;
    private readonly RedisDedupOptions _options;
    private readonly ILogger<RedisDedupBroker> _logger;
    private readonly string _replicaId = Guid.NewGuid().ToString("N")[..12];
    private readonly ConcurrentDictionary<string, string> _won = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _observed = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, RedisExchangePublisher> _publishers = new(StringComparer.Ordinal); // by claim
    private readonly ConcurrentDictionary<FollowerRegistration, byte> _followers = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenRegistration _applicationStopping;
    private readonly Task _sweep;
    private readonly RedisChannel _leaderChannel;
    private readonly RedisValue _leaseMs;
    private readonly RedisValue _retentionMs;
    private readonly Counter<long>? _takeovers;
    private readonly ResiliencePipeline _appendRetry;
    private long _sequence;
    private readonly TimeProvider _time;
    private int _stopRequested;
    private int _disposed;

    public RedisDedupBroker(IConnectionMultiplexer redis, IOptions<RedisDedupOptions> options, ILogger<RedisDedupBroker> logger,
        IHostApplicationLifetime? lifetime = null, IMeterFactory? meterFactory = null, TimeProvider? time = null)
    {
        _redis = redis;
        _options = options.Value;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        // A publish batch gets three more tries after 50 ms, 250 ms and 1 s (jittered), none once the broker is disposed.
        _appendRetry = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && IsRedisFailure(ex) && !IsDisposed),
                MaxRetryAttempts = RetryDelays.Length,
                DelayGenerator = static args => ValueTask.FromResult<TimeSpan?>(Jittered(RetryDelays[args.AttemptNumber])),
            })
            .Build();
        _leaseMs = (long)_options.Lease.TotalMilliseconds;
        _retentionMs = (long)_options.Retention.TotalMilliseconds;
        if (lifetime is not null) _applicationStopping = lifetime.ApplicationStopping.Register(static b => ((RedisDedupBroker)b!).RequestStop(), this);
        if (meterFactory is not null)
        {
            var meter = meterFactory.Create(GatewayMetrics.MeterName);
            meter.CreateObservableGauge("tokenrouter.dedup.remote.leading", () => PublishingCount, "{call}",
                "Calls this replica leads across replicas (claimed in Redis; mirrored once another replica follows).");
            meter.CreateObservableGauge("tokenrouter.dedup.remote.following", () => FollowingCount, "{call}",
                "Calls of another replica this replica relays from Redis.");
            _takeovers = meter.CreateCounter<long>("tokenrouter.dedup.remote.takeovers", "{call}",
                "Own calls a follower replica made because the leading replica stopped before answering (or Redis was unreachable).");
        }
        var tick = TimeSpan.FromTicks(Math.Min(_options.Lease.Ticks / 3, TimeSpan.TicksPerSecond));
        _sweep = Task.Run(() => SweepAsync(tick));
        _leaderChannel = RedisChannel.Literal(RedisContract.DedupLeaderChannel(_replicaId));
        _ = ListenForFollowersAsync();
    }

    /// <summary>Followers on other replicas announce themselves on this replica's channel with the claim they follow.</summary>
    private async Task ListenForFollowersAsync()
    {
        try
        {
            await _redis.GetSubscriber().SubscribeAsync(_leaderChannel, (_, claim) =>
            {
                if (_publishers.TryGetValue((string)claim!, out var publisher)) publisher.StartMirroring();
            });
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            // The sweep still starts mirroring once it sees a registered follower, a tick later.
            LogLeaderChannelUnavailable(ex.GetType().Name);
        }
    }

    /// <summary>This replica is shutting down: failures of its calls are handed off, not relayed.</summary>
    public bool IsStopping => Volatile.Read(ref _stopRequested) == 1;

    /// <summary>Calls this replica leads across replicas right now, mirrored or not.</summary>
    public int PublishingCount => _publishers.Count;

    /// <summary>Remote calls this replica relays right now.</summary>
    public int FollowingCount => _followers.Count;

    private IDatabase Db => _redis.GetDatabase();

    // ---- Leading ------------------------------------------------------------------------------------------

    /// <remarks>Deliberately not cancelled with the request: a claim abandoned half-way would leave a lease with nobody
    /// publishing behind it, and other replicas would wait a lease for nothing. The forwarder's own catch handles
    /// <see cref="RedisException"/> (lead locally), so every Redis failure surfaces as one.</remarks>
    public async Task<bool> TryClaimAsync(string key, CancellationToken cancellationToken)
    {
        var claim = NewId();
        string? owner;
        try
        {
            owner = await ClaimAsync(key, claim);
            if (owner is not null && AnsweredHere(owner) && await ReplaceClaimAsync(key, owner, claim)) owner = null;
        }
        catch (Exception ex) when (ex is not RedisException && IsRedisFailure(ex))
        {
            throw new RedisException($"Claiming an in-flight request failed: {ex.Message}", ex);
        }
        if (owner is null)
        {
            _won[key] = claim;
            return true;
        }
        _observed[key] = owner;
        return false;
    }

    public IExchangeMirror CreatePublisher(InflightExchange exchange)
    {
        if (!_won.TryRemove(exchange.Key, out var claim))
        {
            // Only reachable if the caller did not claim first; publishing without a claim would mislead followers.
            LogPublisherWithoutClaim(exchange.Key);
            return NullMirror.Instance;
        }
        return StartPublishing(exchange, claim);
    }

    private RedisExchangePublisher StartPublishing(InflightExchange exchange, string claim, bool mirrorNow = false)
    {
        var publisher = new RedisExchangePublisher(this, exchange, claim);
        _publishers[claim] = publisher;
        if (mirrorNow) publisher.StartMirroring();
        if (IsStopping) publisher.HandOff();
        return publisher;
    }

    internal async Task<bool> AppendAsync(RedisExchangePublisher publisher, List<RedisExchangePublisher.Entry> batch, long firstId, bool final)
    {
        var args = new List<RedisValue>(4 + batch.Count * 8) { _retentionMs, final ? "1" : "0", publisher.Claim, publisher.WakeChannel };
        var id = firstId;
        foreach (var entry in batch)
        {
            args.Add("0-" + (id++).ToString(CultureInfo.InvariantCulture));
            entry.WriteTo(args);
        }
        RedisKey[] keys = [publisher.Events, publisher.Owner, publisher.Followers];
        var values = args.ToArray();
        try
        {
            // No token: publishing outlives the request that started it (the publisher's flush runs detached).
            await _appendRetry.ExecuteAsync(async _ => await AppendScript.EvaluateAsync(Db, keys, values), CancellationToken.None);
            return true;
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            LogPublishFailed(publisher.Exchange.Key, ex.GetType().Name, ex.Message);
            return false;
        }
    }

    /// <summary>Ends a call nobody followed: true when a follower registered meanwhile (write the whole response), false
    /// when the claim is gone, null when Redis failed (followers, if any, notice the silence and the lapsed claim).</summary>
    internal async Task<bool?> SettleAsync(RedisExchangePublisher publisher)
    {
        try
        {
            return (long)await SettleScript.EvaluateAsync(Db, [publisher.Owner, publisher.Followers, publisher.Joining], [publisher.Claim]) == 1;
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            LogPublishFailed(publisher.Exchange.Key, ex.GetType().Name, ex.Message);
            return null;
        }
    }

    /// <summary>The delay ±20 %, so replicas that lost Redis together do not all come back in step.</summary>
    private static TimeSpan Jittered(TimeSpan delay) => delay * (0.8 + 0.4 * Random.Shared.NextDouble());

    internal void Retire(RedisExchangePublisher publisher) => _publishers.TryRemove(publisher.Claim, out _);

    // ---- The sweep: leases, registrations, holds ------------------------------------------------------------

    private async Task SweepAsync(TimeSpan tick)
    {
        using var timer = new PeriodicTimer(tick);
        var work = new List<Task>();
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                work.Clear();
                foreach (var publisher in _publishers.Values)
                    if (!publisher.IsClosed) work.Add(RenewLeaderAsync(publisher));
                foreach (var registration in _followers.Keys) work.Add(RenewFollowerSafelyAsync(registration));
                await Task.WhenAll(work);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    private async Task RenewLeaderAsync(RedisExchangePublisher publisher)
    {
        long followers;
        try
        {
            followers = (long)await RenewLeaderScript.EvaluateAsync(Db, [publisher.Owner, publisher.Events, publisher.Followers],
                [publisher.Claim, _leaseMs, _retentionMs]);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            // Without Redis no other replica can be relaying this call: stop keeping it alive for them.
            followers = 0;
        }
        if (followers > 0) publisher.StartMirroring(); // its announcement was lost, or came before the publisher existed
        else if (publisher.OnlyHoldListens) publisher.ReleaseHold();
    }

    private async Task RenewFollowerSafelyAsync(FollowerRegistration registration)
    {
        try
        {
            await RenewFollowerAsync(registration);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            // Its deadline may run out; the leader then stops holding the call only if its own clients left too.
        }
    }

    // ---- Shutdown -----------------------------------------------------------------------------------------

    private void RequestStop() => Interlocked.Exchange(ref _stopRequested, 1);

    private bool IsDisposed => Volatile.Read(ref _disposed) == 1;

    /// <summary>Hands every call still running off to its followers, so they take over now instead of after the lease.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        RequestStop();
        await _stopping.CancelAsync();
        foreach (var publisher in _publishers.Values) publisher.HandOff();
        // Real time, not the injected clock: shutdown must end even where a test's clock stands still.
        var handOff = Stopwatch.GetTimestamp();
        while (!_publishers.IsEmpty && Stopwatch.GetElapsedTime(handOff) < HandOffTimeout) await Task.Delay(10);
        await _sweep;
        try
        {
            await _redis.GetSubscriber().UnsubscribeAsync(_leaderChannel);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            // The subscription goes with the connection.
        }
        _applicationStopping.Dispose();
        _stopping.Dispose();
    }

    // ---- Helpers ------------------------------------------------------------------------------------------

    private async Task<string?> ClaimAsync(string key, string claim)
    {
        var result = await ClaimScript.EvaluateAsync(Db, [RedisContract.DedupOwnerKey(key), RedisContract.DedupJoiningKey(key)], [claim, _leaseMs]);
        return result.IsNull ? null : (string?)result;
    }

    /// <summary>
    /// The claim is this replica's own call, which has already answered here but not yet released the claim (it does so
    /// one round trip after the answer). Following it would replay that answer to a request sent after it, while dedup
    /// is for requests in flight at the same time: the new request leads in its place.
    /// </summary>
    private bool AnsweredHere(string claim) => _publishers.TryGetValue(claim, out var own) && own.Exchange.IsCompleted;

    private async Task<bool> ReplaceClaimAsync(string key, string oldClaim, string claim) =>
        (long)await ReplaceClaimScript.EvaluateAsync(Db, [RedisContract.DedupOwnerKey(key)], [oldClaim, claim, _leaseMs]) == 1;

    private async Task<string?> TakeOverAsync(string key, string deadClaim, string claim)
    {
        var result = await TakeOverScript.EvaluateAsync(Db,
            [RedisContract.DedupOwnerKey(key), RedisContract.DedupSuccessorKey(key, deadClaim)], [claim, _leaseMs, _retentionMs]);
        return result.IsNull ? null : (string?)result;
    }

    private string NewId() => _replicaId + "." + Interlocked.Increment(ref _sequence).ToString(CultureInfo.InvariantCulture);

    private static bool IsRedisFailure(Exception ex) => ex is RedisException or TimeoutException or ObjectDisposedException;

    private sealed class NullMirror : IExchangeMirror
    {
        public static readonly NullMirror Instance = new();
        public void Head(int status, string? contentType) { }
        public void Chunk(ReadOnlySpan<byte> bytes) { }
        public void Complete(Usage usage) { }
        public void Fail(ApiError error, Usage usage) { }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dedup: publishing the response of {Key} to other replicas failed ({Error}: {Message}); they will make their own call")]
    private partial void LogPublishFailed(string key, string error, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dedup: listening for followers on other replicas failed ({Error}); they are noticed by the lease sweep instead")]
    private partial void LogLeaderChannelUnavailable(string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dedup: a publisher for {Key} was requested without a claim; not publishing")]
    private partial void LogPublisherWithoutClaim(string key);

    private void NoteOwnCall(string key, string reason)
    {
        _takeovers?.Add(1);
        LogOwnCallMessage(key, reason);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Dedup: making our own call for {Key}: {Reason}")]
    private partial void LogOwnCallMessage(string key, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dedup: the replica leading {Key} stopped mid-response; its followers here get 502")]
    private partial void LogLeaderLost(string key);
}

public static class RedisDedupServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="RedisDedupBroker"/> as the <see cref="IDedupBroker"/> (options: section <c>Dedup</c>, see
    /// <see cref="RedisDedupOptions"/>). Needs an <see cref="IConnectionMultiplexer"/>; call it only when Redis is configured.
    /// </summary>
    public static IServiceCollection AddRedisDedupBroker(this IServiceCollection services)
    {
        services.AddOptions<RedisDedupOptions>()
            .Configure<IConfiguration>((o, configuration) => RedisDedupOptions.Bind(configuration.GetSection(RedisDedupOptions.SectionName), o))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisDedupOptions>, RedisDedupOptionsValidator>());
        services.TryAddSingleton<RedisDedupBroker>();
        services.TryAddSingleton<IDedupBroker>(sp => sp.GetRequiredService<RedisDedupBroker>());
        return services;
    }
}
