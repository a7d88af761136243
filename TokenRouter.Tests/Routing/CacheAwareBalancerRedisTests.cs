using StackExchange.Redis;
using TokenRouter.Gateway.Routing;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Routing.BalancerTestKit;

namespace TokenRouter.Tests.Routing;

/// <summary>
/// Two gateway replicas, each with its own balancer (and local pins), sharing the test run's real Redis. Every test
/// uses a scope of its own, so pins of other tests (and runs) never match.
/// </summary>
public sealed class CacheAwareBalancerRedisTests : IAsyncLifetime
{
    private ConnectionMultiplexer _redisA = null!;
    private ConnectionMultiplexer _redisB = null!;
    private readonly string _scope = "tenant-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        var server = await RedisServer.GetSharedAsync();
        var configuration = $"{server.ConnectionString},abortConnect=false,asyncTimeout=2000,syncTimeout=2000,connectTimeout=2000";
        _redisA = await ConnectionMultiplexer.ConnectAsync(configuration);
        _redisB = await ConnectionMultiplexer.ConnectAsync(configuration);
    }

    public async Task DisposeAsync()
    {
        await _redisA.DisposeAsync();
        await _redisB.DisposeAsync();
    }

    private static CacheAwareBalancer Replica(IConnectionMultiplexer redis) =>
        new(TimeProvider.System, new CacheAwareBalancingOptions { SharedLookupTimeout = TimeSpan.FromSeconds(5) }, redis);

    private static Task<int> FirstAsync(CacheAwareBalancer balancer, RoutingRequest request) =>
        balancer.OrderAsync(request, FourEqual, AllAvailable, CancellationToken.None).AsTask().ContinueWith(t => t.Result[0], TaskScheduler.Default);

    [Fact]
    public async Task A_pin_made_by_one_replica_is_honoured_by_another()
    {
        var replicaA = Replica(_redisA);
        var replicaB = Replica(_redisB);
        var rendezvous = await FirstAsync(replicaA, Request("c", 0, scope: _scope));
        var failedOverTo = (rendezvous + 1) % 4;
        await replicaA.ServedAsync(Request("c", 0, scope: _scope), FourEqual[failedOverTo], CancellationToken.None);

        // The write is behind the request (fire-and-forget): the other replica sees it once it has landed.
        await Eventually.TrueAsync(async () => await FirstAsync(replicaB, Request("c", 0, scope: _scope)) == failedOverTo,
            "replica B routes the conversation to the deployment replica A pinned");
    }

    [Fact]
    public async Task The_next_turn_on_another_replica_finds_the_previous_turns_prefix()
    {
        var replicaA = Replica(_redisA);
        var replicaB = Replica(_redisB);
        var rendezvous = await FirstAsync(replicaA, Request("c", 3, scope: _scope));
        var servedAt = (rendezvous + 2) % 4;
        await replicaA.ServedAsync(Request("c", 3, scope: _scope), FourEqual[servedAt], CancellationToken.None);

        await Eventually.TrueAsync(async () => await FirstAsync(replicaB, Request("c", 4, scope: _scope)) == servedAt,
            "replica B routes turn 4 to where replica A served turn 3");
        // Found once, the pin is local to B: the following turn needs no Redis read to get there.
        Assert.True(replicaB.OrderAsync(Request("c", 4, scope: _scope), FourEqual, AllAvailable, CancellationToken.None).IsCompleted);
    }

    [Fact]
    public async Task A_session_pin_is_shared_between_replicas()
    {
        var replicaA = Replica(_redisA);
        var replicaB = Replica(_redisB);
        var session = Header("x-claude-code-session-id", Guid.NewGuid().ToString());
        var rendezvous = await FirstAsync(replicaA, Request("c", 0, scope: _scope, system: ShortSystem, headers: session));
        var servedAt = (rendezvous + 3) % 4;
        await replicaA.ServedAsync(Request("c", 0, scope: _scope, system: ShortSystem, headers: session), FourEqual[servedAt], CancellationToken.None);

        await Eventually.TrueAsync(
            async () => await FirstAsync(replicaB, Request("another-task", 0, scope: _scope, system: ShortSystem, headers: session)) == servedAt,
            "replica B routes the session's next request to where replica A served it");
    }

    [Fact]
    public async Task Pins_land_in_redis_with_the_providers_cache_ttl()
    {
        var replicaA = Replica(_redisA);
        var request = Request("c", 0, scope: _scope, provider: "anthropic");
        await replicaA.ServedAsync(request, FourEqual[1], CancellationToken.None);

        using var keys = AffinityKeys.Compute(request, new CacheAwareBalancingOptions().MinCacheableTokens * 4);
        var key = CacheAwareBalancer.RedisKey(keys.Longest!.Value);
        var db = _redisA.GetDatabase();
        await Eventually.TrueAsync(async () => await db.StringGetAsync(key) == "d1", "the pin is written to Redis");
        var ttl = await db.KeyTimeToLiveAsync(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5));
    }
}

/// <summary>A configured Redis that cannot be reached: the balancer routes from its local pins and never waits on it.</summary>
public sealed class CacheAwareBalancerUnreachableRedisTests : IAsyncLifetime
{
    private ConnectionMultiplexer _redis = null!;

    public async Task InitializeAsync() =>
        _redis = await ConnectionMultiplexer.ConnectAsync(
            $"127.0.0.1:{LocalServerProcess.FreeTcpPort()},abortConnect=false,connectTimeout=200,connectRetry=0");

    public async Task DisposeAsync() => await _redis.DisposeAsync();

    [Fact]
    public async Task Without_a_reachable_redis_requests_are_routed_locally_and_synchronously()
    {
        var balancer = new CacheAwareBalancer(TimeProvider.System, new CacheAwareBalancingOptions(), _redis);
        var rendezvous = balancer.Order(Request("c", 0))[0];
        await balancer.ServedAsync(Request("c", 0), FourEqual[(rendezvous + 1) % 4], CancellationToken.None);

        var next = balancer.OrderAsync(Request("c", 1), FourEqual, AllAvailable, CancellationToken.None);
        Assert.True(next.IsCompleted);
        Assert.Equal((rendezvous + 1) % 4, (await next)[0]);
        // A conversation unknown here is not looked up in a Redis that is down: it goes to its rendezvous choice at once.
        Assert.True(balancer.OrderAsync(Request("never-seen", 3), FourEqual, AllAvailable, CancellationToken.None).IsCompleted);
    }
}
