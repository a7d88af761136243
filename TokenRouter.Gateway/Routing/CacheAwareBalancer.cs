using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using StackExchange.Redis;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// Keeps requests that share a cacheable prefix on the deployment whose provider cache holds it, and spreads new
/// conversations evenly. Affinity, strongest first: the client's session key (coding agents' session headers, its own
/// <c>prompt_cache_key</c>), then the longest prefix of the canonical request that was served recently (cumulative hashes
/// at message boundaries, so a conversation's next turn finds its previous one); without either, weighted rendezvous
/// hashing over the conversation's root. The failover order after the first choice keeps its cache group first, and
/// unavailable deployments go last, so a cooling deployment hands its conversations to their next rendezvous choice while
/// every other conversation stays where it is.
/// </summary>
/// <remarks>
/// Pins live in a bounded local cache; with Redis they are also written behind (fire-and-forget) so other replicas honour
/// them. A request whose keys are all unknown locally makes one Redis read (MGET of its candidate keys) — the only round
/// trip this balancer ever adds, bounded by <see cref="CacheAwareBalancingOptions.SharedLookupTimeout"/>.
/// </remarks>
public sealed partial class CacheAwareBalancer : IDeploymentBalancer
{
    internal const string RedisKeyPrefix = "tokenrouter:pin:";

    private readonly TimeProvider _time;
    private readonly CacheAwareBalancingOptions _options;
    private readonly IConnectionMultiplexer? _redis;
    private readonly ILogger _logger;
    private readonly PinCache _pins;
    // What OrderAsync computed, for the ServedAsync of the same request (hashing the request again would double the
    // balancer's cost); weak, so a request that is never served leaves nothing behind.
    private readonly ConditionalWeakTable<Envelope, Routed> _routed = new();

    private sealed record Routed(string Provider, string Scope, string Model, int Messages, UInt128? Longest, UInt128? Session, bool OneHour)
    {
        public bool Matches(RoutingRequest r) =>
            r.Provider == Provider && r.Scope == Scope && r.Envelope.Model == Model && r.Envelope.Messages.Count == Messages;
    }

    public CacheAwareBalancer(TimeProvider time, CacheAwareBalancingOptions options, IConnectionMultiplexer? redis = null,
        ILogger<CacheAwareBalancer>? logger = null)
    {
        _time = time;
        _options = options;
        _redis = redis;
        _logger = (ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _pins = new PinCache(options.MaxPins);
    }

    /// <summary>Pins held by this replica (bounded by <see cref="CacheAwareBalancingOptions.MaxPins"/>).</summary>
    public int LocalPinCount => _pins.Count;

    public ValueTask<int[]> OrderAsync(RoutingRequest request, IReadOnlyList<DeploymentInfo> deployments, Func<int, bool> isAvailable,
        CancellationToken cancellationToken)
    {
        if (deployments.Count <= 1) return new(deployments.Count == 0 ? [] : [0]);

        using var keys = AffinityKeys.Compute(request, _options.MinCacheableBytes);
        var now = _time.GetUtcNow().UtcTicks;
        var ttl = _options.CacheTtlFor(request.Provider, keys.OneHourCache);
        var pinned = FindLocal(keys, deployments, now, now + ttl.Ticks);
        _routed.AddOrUpdate(request.Envelope,
            new Routed(request.Provider, request.Scope, request.Envelope.Model, request.Envelope.Messages.Count, keys.Longest, keys.Session, keys.OneHourCache));
        if (pinned >= 0 || _redis is not { IsConnected: true } || (keys.Session is null && keys.PrefixCount == 0))
            return new(Order(keys.Root, pinned, deployments, isAvailable));

        // Nothing known here: maybe another replica served this conversation. One read of all candidates, best first.
        var candidates = new UInt128[Math.Min(keys.PrefixCount + 1, _options.MaxSharedLookups)];
        var count = 0;
        if (keys.Session is { } session) candidates[count++] = session;
        var prefixes = keys.Prefixes;
        for (var i = prefixes.Length - 1; i >= 0 && count < candidates.Length; i--) candidates[count++] = prefixes[i];
        return new(OrderWithSharedPinAsync(keys.Root, candidates, deployments, isAvailable, ttl, cancellationToken));
    }

    public ValueTask ServedAsync(RoutingRequest request, DeploymentInfo deployment, CancellationToken cancellationToken)
    {
        if (!_routed.TryGetValue(request.Envelope, out var routed) || !routed.Matches(request))
        {
            using var keys = AffinityKeys.Compute(request, _options.MinCacheableBytes);
            routed = new Routed(request.Provider, request.Scope, request.Envelope.Model, request.Envelope.Messages.Count, keys.Longest, keys.Session, keys.OneHourCache);
        }
        var now = _time.GetUtcNow().UtcTicks;
        var ttl = _options.CacheTtlFor(request.Provider, routed.OneHour);
        // The longest prefix is what the provider now caches; the next turn extends it and finds it as its own prefix.
        if (routed.Longest is { } longest) Pin(longest, deployment.Id, now, ttl);
        if (routed.Session is { } session) Pin(session, deployment.Id, now, ttl);
        return ValueTask.CompletedTask;
    }

    private void Pin(UInt128 key, string deploymentId, long now, TimeSpan ttl)
    {
        var pin = _pins.Set(key, deploymentId, now, now + ttl.Ticks, sharedAt: long.MinValue);
        if (_redis is not { IsConnected: true }) return;
        // A new or moved pin is written at once; a live one is refreshed a few times per TTL, not on every request.
        var shared = Volatile.Read(ref pin.SharedAt);
        if (shared != long.MinValue && now - shared < ttl.Ticks / 4) return;
        Volatile.Write(ref pin.SharedAt, now);
        // Write-behind: the request never waits for it; a lost write costs another replica one cache miss at most.
        _ = _redis.GetDatabase().StringSetAsync(RedisKey(key), deploymentId, ttl, flags: CommandFlags.FireAndForget);
    }

    private int FindLocal(in AffinityKeys keys, IReadOnlyList<DeploymentInfo> deployments, long now, long extendTo)
    {
        if (keys.Session is { } session && _pins.TryGet(session, now, extendTo) is { } sessionPin &&
            IndexOf(deployments, sessionPin.DeploymentId) is var s and >= 0)
        {
            return s;
        }
        var prefixes = keys.Prefixes;
        for (var i = prefixes.Length - 1; i >= 0; i--)
        {
            if (_pins.TryGet(prefixes[i], now, extendTo) is { } pin && IndexOf(deployments, pin.DeploymentId) is var p and >= 0) return p;
        }
        return -1;
    }

    private async Task<int[]> OrderWithSharedPinAsync(UInt128 root, UInt128[] candidates, IReadOnlyList<DeploymentInfo> deployments,
        Func<int, bool> isAvailable, TimeSpan ttl, CancellationToken cancellationToken)
    {
        var pinned = -1;
        try
        {
            var redisKeys = new RedisKey[candidates.Length];
            for (var i = 0; i < candidates.Length; i++) redisKeys[i] = RedisKey(candidates[i]);
            var values = await _redis!.GetDatabase().StringGetAsync(redisKeys)
                .WaitAsync(_options.SharedLookupTimeout, _time, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < values.Length && pinned < 0; i++)
            {
                if (values[i].IsNullOrEmpty || IndexOf(deployments, values[i].ToString()) is not (var index and >= 0)) continue;
                pinned = index;
                // Remember it here (the replica's own id string, not Redis's copy): the next turn needs no round trip.
                var now = _time.GetUtcNow().UtcTicks;
                _pins.Set(candidates[i], deployments[index].Id, now, now + ttl.Ticks, sharedAt: now);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSharedLookupFailed(e);
        }
        return Order(root, pinned, deployments, isAvailable);
    }

    /// <summary>
    /// Weighted rendezvous order over <paramref name="root"/>, with <paramref name="pinned"/> (if any) moved to the front,
    /// the first choice's cache group right after it, and unavailable deployments last (each step stable).
    /// </summary>
    internal static int[] Order(UInt128 root, int pinned, IReadOnlyList<DeploymentInfo> deployments, Func<int, bool> isAvailable)
    {
        var n = deployments.Count;
        var order = new int[n];
        Span<double> scores = n <= 64 ? stackalloc double[n] : new double[n];
        var seed = (long)(ulong)(root ^ (root >> 64));
        for (var i = 0; i < n; i++)
        {
            scores[i] = Score(seed, deployments[i]);
            order[i] = i;
            // Insertion sort, highest score first: a provider has a handful of deployments.
            for (var j = i; j > 0 && scores[order[j]] > scores[order[j - 1]]; j--) (order[j], order[j - 1]) = (order[j - 1], order[j]);
        }

        if (pinned >= 0) MoveToFront(order, pinned);
        var group = deployments[order[0]].CacheGroup;
        Span<int> scratch = n <= 64 ? stackalloc int[n] : new int[n];
        if (group is not null) GroupFirst(order.AsSpan(1), scratch, deployments, group);
        StablePartition(order, scratch, isAvailable);
        return order;
    }

    /// <summary>Highest-random-weight score <c>-weight / ln(u)</c>, u uniform in (0, 1) from the root and the deployment id:
    /// each deployment wins a share of roots proportional to its weight, and removing one moves only its own roots.</summary>
    private static double Score(long seed, DeploymentInfo deployment)
    {
        var h = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(deployment.Id.AsSpan()), seed);
        var u = ((h >> 11) + 0.5) * (1.0 / (1UL << 53));
        return deployment.Weight > 0 ? -deployment.Weight / Math.Log(u) : 0;
    }

    private static void MoveToFront(int[] order, int index)
    {
        var at = Array.IndexOf(order, index);
        for (var j = at; j > 0; j--) order[j] = order[j - 1];
        order[0] = index;
    }

    private static void StablePartition(Span<int> items, Span<int> scratch, Func<int, bool> first)
    {
        int head = 0, tail = 0;
        var rest = scratch[..items.Length];
        foreach (var i in items)
        {
            if (first(i)) items[head++] = i;
            else rest[tail++] = i;
        }
        rest[..tail].CopyTo(items[head..]);
    }

    private static void GroupFirst(Span<int> items, Span<int> scratch, IReadOnlyList<DeploymentInfo> deployments, string group)
    {
        int head = 0, tail = 0;
        var rest = scratch[..items.Length];
        foreach (var i in items)
        {
            if (deployments[i].CacheGroup == group) items[head++] = i;
            else rest[tail++] = i;
        }
        rest[..tail].CopyTo(items[head..]);
    }

    private static int IndexOf(IReadOnlyList<DeploymentInfo> deployments, string id)
    {
        for (var i = 0; i < deployments.Count; i++)
        {
            if (string.Equals(deployments[i].Id, id, StringComparison.Ordinal)) return i;
        }
        return -1;
    }

    internal static RedisKey RedisKey(UInt128 key)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, key);
        return RedisKeyPrefix + Convert.ToHexStringLower(bytes);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Shared pin lookup failed; routing by rendezvous")]
    private partial void LogSharedLookupFailed(Exception exception);
}
