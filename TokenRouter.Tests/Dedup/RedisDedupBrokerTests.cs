using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>
/// <see cref="RedisDedupBroker"/> against a real Redis, one broker (with its own connection) per simulated replica,
/// driving <see cref="InflightExchange"/>s directly the way the forwarder's pump and listeners do.
/// </summary>
public sealed partial class RedisDedupBrokerTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly string _key = "test-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync() => _redis = await RedisServer.GetSharedAsync();

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
    }

    private sealed record Replica(RedisDedupBroker Broker, ConnectionMultiplexer Connection);

    private async Task<Replica> ReplicaAsync(TimeSpan? lease = null, TimeSpan? leaderWait = null, TimeProvider? time = null)
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",abortConnect=false,asyncTimeout=1000");
        var broker = new RedisDedupBroker(connection, Options.Create(new RedisDedupOptions
        {
            Lease = lease ?? TimeSpan.FromSeconds(1),
            LeaderWait = leaderWait ?? TimeSpan.FromMilliseconds(200),
        }), NullLogger<RedisDedupBroker>.Instance, time: time);
        _owned.Add(connection);
        _owned.Add(broker);
        return new Replica(broker, connection);
    }

    private InflightExchange NewExchange()
    {
        var exchange = new InflightExchange(_key, stream: true, Stopwatch.GetTimestamp());
        Assert.True(exchange.TryListen()); // the client that created it
        return exchange;
    }

    private async Task<InflightExchange> LeadAsync(Replica replica)
    {
        var exchange = NewExchange();
        Assert.True(await replica.Broker.TryClaimAsync(_key, CancellationToken.None));
        exchange.Mirror = replica.Broker.CreatePublisher(exchange);
        return exchange;
    }

    /// <summary>Replica A leads the call; replica B's claim finds it taken.</summary>
    private async Task<(Replica A, Replica B, InflightExchange Leading)> LeadOnAClaimedFromBAsync()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        var leading = await LeadAsync(a);
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        return (a, b, leading);
    }

    /// <summary>Waits until the follower registered and the leader heard of it: a call nobody follows writes nothing to
    /// Redis, so a follower that registered only after the call ended would rightly make its own call.</summary>
    private static Task MirroringAsync(InflightExchange leading) =>
        WaitUntilAsync(() => ((RedisExchangePublisher)leading.Mirror!).IsMirroring, () => "the leader should hear of its follower");

    /// <summary>The leader's whole JSON answer, then until its publisher has settled or written it and retired.</summary>
    private static async Task AnswerAsync(Replica leader, InflightExchange leading, string json, Usage usage)
    {
        leading.SetHead(200, "application/json");
        leading.Append(Encoding.UTF8.GetBytes(json));
        leading.Complete(usage);
        await WaitUntilAsync(() => leader.Broker.PublishingCount == 0, () => "the publisher should retire");
    }

    private static byte[] Body(InflightExchange exchange)
    {
        var count = exchange.WaitForChunksAsync(0, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        return [.. Enumerable.Range(0, count).SelectMany(i => exchange.Chunk(i).ToArray())];
    }

    private static Func<Task> NoOwnCall => () => throw new InvalidOperationException("the follower should not make its own call");

    [Fact]
    public async Task Follower_receives_the_leaders_head_bytes_and_usage_exactly()
    {
        var (a, b, leading) = await LeadOnAClaimedFromBAsync();
        var following = NewExchange();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None);
        await MirroringAsync(leading);

        var random = new Random(7);
        var written = new List<byte>();
        leading.SetHead(200, "text/event-stream");
        foreach (var size in new[] { 1, 17, 4096, 300_000, 3, 70_000 })
        {
            var chunk = new byte[size];
            random.NextBytes(chunk);
            written.AddRange(chunk);
            leading.Append(chunk);
        }
        var usage = new Usage(PromptTokens: 2000, CachedReadTokens: 1024, CacheWrite5mTokens: 5, CacheWrite1hTokens: 6, CompletionTokens: 77);
        leading.Complete(usage);

        Assert.False(await follow.WaitAsync(Bounded));
        Assert.Equal(200, following.Status);
        Assert.Equal("text/event-stream", following.ContentType);
        Assert.Equal(usage, following.Usage);
        Assert.Null(following.Error);
        Assert.Equal(written.ToArray(), Body(following));
        await WaitUntilAsync(() => a.Broker.PublishingCount == 0 && b.Broker.FollowingCount == 0, () => "both sides should be done");
        Assert.False(await a.Connection.GetDatabase().KeyExistsAsync(RedisContract.DedupOwnerKey(_key)));
    }

    [Fact]
    public async Task Follower_receives_the_leaders_provider_error_and_usage()
    {
        var (_, b, leading) = await LeadOnAClaimedFromBAsync();
        var following = NewExchange();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None);
        await MirroringAsync(leading);

        leading.Fail(new ApiError(429, "rate_limit_error", "Slow down.", "rate_limit_exceeded", "model"), new Usage(10, 0, 0, 0, 1));

        Assert.False(await follow.WaitAsync(Bounded));
        var error = Assert.IsType<ApiError>(following.Error);
        Assert.Equal(429, error.Status);
        Assert.Equal("rate_limit_error", error.Type);
        Assert.Equal("Slow down.", error.Message);
        Assert.Equal("rate_limit_exceeded", error.Code);
        Assert.Equal("model", error.Param);
        Assert.Equal(new Usage(10, 0, 0, 0, 1), following.Usage);
        Assert.True(following.IsCompleted);
    }

    [Fact]
    public async Task Follower_takes_over_with_its_own_published_call_when_the_leader_dies_before_answering()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        await LeadAsync(a);
        var db = b.Connection.GetDatabase();
        var deadClaim = (string?)await db.StringGetAsync(RedisContract.DedupOwnerKey(_key));
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));

        await a.Connection.DisposeAsync(); // A crashes: no more renewals, no more writes
        var following = NewExchange();
        var ownCalls = 0;
        var tookOver = await b.Broker.FollowAsync(_key, following, () =>
        {
            Interlocked.Increment(ref ownCalls);
            following.SetHead(200, "application/json");
            following.Append("{\"ok\":true}"u8);
            following.Complete(new Usage(1, 0, 0, 0, 1));
            return Task.CompletedTask;
        }, CancellationToken.None).WaitAsync(Bounded);

        Assert.True(tookOver);
        Assert.Equal(1, ownCalls);
        Assert.Equal("RedisExchangePublisher", following.Mirror?.GetType().Name); // B publishes its own call in turn
        await WaitUntilAsync(() => b.Broker.PublishingCount == 0, () => "B's publisher should retire");
        // B claimed the request in A's place and published its own call under its claim.
        // Looked at through a connection of the test's own: the replicas' 1 s timeout is for the broker, not for a busy CI box.
        await using var probe = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString);
        var claims = new List<string>();
        await foreach (var k in probe.GetServers()[0].KeysAsync(pattern: RedisContract.DedupPrefix + "{" + _key + "}:events:*"))
            claims.Add(k.ToString());
        var takeover = Assert.Single(claims, k => !k.EndsWith(":" + deadClaim, StringComparison.Ordinal));
        var entries = await probe.GetDatabase().StreamRangeAsync(takeover);
        Assert.Equal(["head", "chunk", "end"], entries.Select(e => (string)e[RedisContract.DedupFields.Type]!).ToArray());
    }

    [Fact]
    public async Task A_follower_waits_for_a_dead_leader_by_its_clock_not_by_real_time()
    {
        // A leader wait of an hour: only the injected clock can end it within the test.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var a = await ReplicaAsync(lease: TimeSpan.FromMilliseconds(100));
        var b = await ReplicaAsync(leaderWait: TimeSpan.FromHours(1), time: time);
        await LeadAsync(a);
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        await a.Connection.DisposeAsync(); // A crashes; its claim expires in Redis after 100 ms of real time

        var following = NewExchange();
        var ownCalls = 0;
        var follow = b.Broker.FollowAsync(_key, following, () =>
        {
            Interlocked.Increment(ref ownCalls);
            following.SetHead(200, "application/json");
            following.Complete(new Usage(1, 0, 0, 0, 1));
            return Task.CompletedTask;
        }, CancellationToken.None);
        await Task.Delay(400); // the claim is gone by now, but B's clock has not reached its leader wait
        Assert.False(follow.IsCompleted);
        Assert.Equal(0, ownCalls);

        await Eventually.TrueAsync(() =>
        {
            time.Advance(TimeSpan.FromMinutes(5));
            return follow.IsCompleted;
        }, "the follower to take over once its clock passed the leader wait");
        Assert.True(await follow);
        Assert.Equal(1, ownCalls);
        Assert.True(time.GetUtcNow() - time.Start >= TimeSpan.FromHours(1));
    }

    [Fact]
    public async Task Follower_mid_response_fails_with_bad_gateway_when_the_leader_dies()
    {
        var (a, b, leading) = await LeadOnAClaimedFromBAsync();
        var following = NewExchange();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None);
        leading.SetHead(200, "text/event-stream");
        leading.Append("data: {\"partial\":true}\n\n"u8);
        await WaitUntilAsync(() => following.BodyBytes > 0, () => "the first bytes should reach the follower");

        await a.Connection.DisposeAsync();

        Assert.False(await follow.WaitAsync(Bounded));
        Assert.Equal(502, following.Error?.Status);
        Assert.Equal(200, following.Status);
    }

    [Fact]
    public async Task Only_one_of_two_follower_replicas_takes_over_a_dead_leader_and_the_other_relays_it()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        var c = await ReplicaAsync();
        await LeadAsync(a);
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        Assert.False(await c.Broker.TryClaimAsync(_key, CancellationToken.None));
        await a.Connection.DisposeAsync();

        var ownCalls = 0;
        Func<Task> OwnCall(InflightExchange exchange) => () =>
        {
            Interlocked.Increment(ref ownCalls);
            exchange.SetHead(200, "application/json");
            exchange.Append("{\"answer\":\"from the new leader\"}"u8);
            exchange.Complete(new Usage(5, 0, 0, 0, 5));
            return Task.CompletedTask;
        };
        var atB = NewExchange();
        var atC = NewExchange();
        var results = await Task.WhenAll(
            b.Broker.FollowAsync(_key, atB, OwnCall(atB), CancellationToken.None),
            c.Broker.FollowAsync(_key, atC, OwnCall(atC), CancellationToken.None)).WaitAsync(Bounded);

        Assert.Equal(1, ownCalls);
        Assert.Single(results, tookOver => tookOver);
        Assert.Equal("{\"answer\":\"from the new leader\"}"u8.ToArray(), Body(atB));
        Assert.Equal(Body(atB), Body(atC));
        Assert.Equal(new Usage(5, 0, 0, 0, 5), atC.Usage);
    }

    [Fact]
    public async Task Follow_stops_when_every_local_client_left()
    {
        var (_, b, _) = await LeadOnAClaimedFromBAsync();
        var following = NewExchange();
        using var allLeft = new CancellationTokenSource();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, allLeft.Token);
        await WaitUntilAsync(() => b.Broker.FollowingCount == 1, () => "B should follow");

        await allLeft.CancelAsync();

        Assert.False(await follow.WaitAsync(Bounded));
        Assert.Equal(499, following.Error?.Status);
        Assert.Equal(0, b.Broker.FollowingCount);
    }

    [Fact]
    public async Task Leader_keeps_its_call_for_a_follower_replica_and_cancels_it_once_nobody_listens_anywhere()
    {
        var (_, b, leading) = await LeadOnAClaimedFromBAsync();
        var following = NewExchange();
        using var bLeft = new CancellationTokenSource();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, bLeft.Token);
        await WaitUntilAsync(() => b.Broker.FollowingCount == 1, () => "B should follow");

        leading.Leave(); // A's only client leaves: the publisher still listens for B
        Assert.False(leading.Upstream.IsCancellationRequested);
        leading.SetHead(200, "text/event-stream");
        leading.Append("data: 1\n\n"u8);
        await WaitUntilAsync(() => following.BodyBytes > 0, () => "B should still be fed");

        await bLeft.CancelAsync();
        await follow.WaitAsync(Bounded);
        await WaitUntilAsync(() => leading.Upstream.IsCancellationRequested, () => "A's call should be cancelled once nobody listens");
    }

    [Fact]
    public async Task Leader_shutting_down_hands_off_at_once_instead_of_after_its_lease()
    {
        // A lease and a leader wait far longer than the bounded wait below: only the hand-off can be this quick.
        var a = await ReplicaAsync(lease: TimeSpan.FromMinutes(2), leaderWait: TimeSpan.FromMinutes(1));
        var b = await ReplicaAsync(lease: TimeSpan.FromMinutes(2), leaderWait: TimeSpan.FromMinutes(1));
        await LeadAsync(a);
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        var following = NewExchange();
        var ownCall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var follow = b.Broker.FollowAsync(_key, following, () =>
        {
            ownCall.SetResult();
            following.Complete(default);
            return Task.CompletedTask;
        }, CancellationToken.None);
        await WaitUntilAsync(() => b.Broker.FollowingCount == 1, () => "B should follow");

        await a.Broker.DisposeAsync();

        await ownCall.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(await follow.WaitAsync(Bounded));
    }

    [Fact]
    public async Task A_call_nobody_followed_lets_go_of_its_exchange_once_settled()
    {
        var a = await ReplicaAsync();
        var leading = await LeadAsync(a);
        Assert.Equal(2, leading.Listeners); // its client and the publisher's hold

        await AnswerAsync(a, leading, "{\"quiet\":true}", new Usage(3, 0, 0, 0, 1));

        // Settled without a follower: the hold is gone, only the client still reads the body.
        Assert.Equal(1, leading.Listeners);
        Assert.Equal("{\"quiet\":true}"u8.ToArray(), Body(leading));
        leading.Leave();
        // The body went back to the pool with the last listener (the hold used to keep it until the exchange was collected).
        Assert.Equal(0, await leading.WaitForChunksAsync(0, CancellationToken.None));
        Assert.False(await a.Connection.GetDatabase().KeyExistsAsync(RedisContract.DedupOwnerKey(_key)));
    }

    [Fact]
    public async Task A_follower_arriving_mid_call_gets_everything_written_before_it_came()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        var leading = await LeadAsync(a);
        leading.SetHead(200, "text/event-stream");
        leading.Append("data: early\n\n"u8);
        Assert.False(((RedisExchangePublisher)leading.Mirror!).IsMirroring);

        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        var following = NewExchange();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None);
        await MirroringAsync(leading);
        await WaitUntilAsync(() => following.BodyBytes > 0, () => "what the leader wrote before B came should reach B");
        leading.Append("data: late\n\n"u8);
        leading.Complete(new Usage(4, 0, 0, 0, 2));

        Assert.False(await follow.WaitAsync(Bounded));
        Assert.Equal(200, following.Status);
        Assert.Equal("data: early\n\ndata: late\n\n"u8.ToArray(), Body(following));
        Assert.Equal(new Usage(4, 0, 0, 0, 2), following.Usage);
    }

    [Fact]
    public async Task A_follower_that_found_the_call_claimed_gets_its_response_even_if_it_registers_after_the_end()
    {
        var (a, b, leading) = await LeadOnAClaimedFromBAsync();

        // The call ends before B's follower registers (or announces itself).
        await AnswerAsync(a, leading, "{\"late\":true}", new Usage(6, 0, 0, 0, 2));

        var following = NewExchange();
        Assert.False(await b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None).WaitAsync(Bounded));
        Assert.Equal(200, following.Status);
        Assert.Equal("{\"late\":true}"u8.ToArray(), Body(following));
        Assert.Equal(new Usage(6, 0, 0, 0, 2), following.Usage);
    }

    [Fact]
    public async Task A_quiet_call_ending_with_a_follower_registered_writes_the_whole_response_which_then_expires()
    {
        var a = await ReplicaAsync();
        var leading = await LeadAsync(a);
        var claim = ((RedisExchangePublisher)leading.Mirror!).Claim;
        var db = a.Connection.GetDatabase();
        // A follower on another replica, registered per the contract, whose announcement never arrived.
        var followers = RedisContract.DedupFollowersKey(_key, claim);
        var redisNow = (await a.Connection.GetServers()[0].TimeAsync()).ToUniversalTime();
        Assert.True(await db.SortedSetAddAsync(followers, "elsewhere.7", new DateTimeOffset(redisNow).AddSeconds(30).ToUnixTimeMilliseconds()));

        await AnswerAsync(a, leading, "{\"n\":1}", new Usage(2, 0, 0, 0, 1));

        Assert.False(await db.KeyExistsAsync(RedisContract.DedupOwnerKey(_key)));
        var events = RedisContract.DedupEventsKey(_key, claim);
        var entries = await db.StreamRangeAsync(events);
        Assert.Equal(["head", "chunk", "end"], entries.Select(e => (string)e[RedisContract.DedupFields.Type]!).ToArray());
        Assert.Equal(["0-1", "0-2", "0-3"], entries.Select(e => (string)e.Id!).ToArray());
        var ttl = await db.KeyTimeToLiveAsync(events);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromMilliseconds(1), new RedisDedupOptions().Retention);
    }

    [Fact]
    public async Task Follower_relays_a_stream_written_per_the_contract_even_without_wake_up_messages()
    {
        var b = await ReplicaAsync();
        var db = b.Connection.GetDatabase();
        const string claim = "elsewhere.1";
        Assert.True(await db.StringSetAsync(RedisContract.DedupOwnerKey(_key), claim, TimeSpan.FromSeconds(30), When.NotExists));
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        var following = NewExchange();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None);
        await WaitUntilAsync(() => b.Broker.FollowingCount == 1, () => "B should follow");

        // What another replica's publisher writes: explicit ids 0-1, 0-2, … and the documented fields; no PUBLISH.
        var events = RedisContract.DedupEventsKey(_key, claim);
        await db.StreamAddAsync(events, [new(RedisContract.DedupFields.Type, RedisContract.DedupEntryTypes.Head),
            new(RedisContract.DedupFields.Status, 200), new(RedisContract.DedupFields.ContentType, "application/json")], "0-1");
        await db.StreamAddAsync(events, [new(RedisContract.DedupFields.Type, RedisContract.DedupEntryTypes.Chunk),
            new(RedisContract.DedupFields.Data, "{\"id\":"u8.ToArray())], "0-2");
        await db.StreamAddAsync(events, [new(RedisContract.DedupFields.Type, RedisContract.DedupEntryTypes.Chunk),
            new(RedisContract.DedupFields.Data, "1}"u8.ToArray())], "0-3");
        await db.StreamAddAsync(events, [new(RedisContract.DedupFields.Type, RedisContract.DedupEntryTypes.End),
            new(RedisContract.DedupFields.PromptTokens, 12), new(RedisContract.DedupFields.CachedReadTokens, 4),
            new(RedisContract.DedupFields.CacheWrite5mTokens, 0), new(RedisContract.DedupFields.CacheWrite1hTokens, 0),
            new(RedisContract.DedupFields.CompletionTokens, 3)], "0-4");

        Assert.False(await follow.WaitAsync(Bounded));
        Assert.Equal(200, following.Status);
        Assert.Equal("application/json", following.ContentType);
        Assert.Equal("{\"id\":1}"u8.ToArray(), Body(following));
        Assert.Equal(new Usage(12, 4, 0, 0, 3), following.Usage);
    }
}
