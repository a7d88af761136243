using System.Net;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>
/// Two gateway replicas sharing one real Redis and one fake provider: identical requests split between them make one
/// upstream call; a leader replica that goes away before answering is replaced by a follower replica's own call.
/// </summary>
public sealed class CrossReplicaDedupTests : IAsyncLifetime
{
    private const string Path = "v1/chat/completions";
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;
    private readonly List<GatewayFactory> _gateways = [];

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.GetSharedAsync();
        _provider = await FakeProvider.StartAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var gateway in _gateways) await gateway.DisposeAsync();
        await _provider.DisposeAsync();
    }

    private GatewayFactory Replica(string? redisConnection = null)
    {
        var settings = GatewayFactory.ProvidersAt(_provider);
        settings["ConnectionStrings:redis"] = redisConnection ?? _redis.ConnectionString;
        // Small so a dead leader is noticed within a second or two.
        settings["Dedup:Lease"] = "1s";
        settings["Dedup:LeaderWait"] = "300ms";
        var gateway = new GatewayFactory(settings);
        _gateways.Add(gateway);
        return gateway;
    }

    private static RedisDedupBroker Broker(GatewayFactory gateway) => gateway.Service<RedisDedupBroker>();

    /// <summary>Learns the request's FullHash with one answered call, then forgets that call.</summary>
    private async Task<string> HashOfAsync(HttpClient client, string body)
    {
        var hash = await FullHashOfAsync(client, Path, body);
        await WaitForFlightEndAsync(_redis, hash);
        _provider.Reset();
        return hash;
    }

    /// <summary>Waits until one replica leads <paramref name="hash"/>, the other relays it, and all clients are attached.</summary>
    private static async Task WaitForOneLeaderOneFollowerAsync(string hash, int clients, GatewayFactory a, GatewayFactory b)
    {
        await WaitUntilAsync(
            () => Broker(a).PublishingCount + Broker(b).PublishingCount == 1 && Broker(a).FollowingCount + Broker(b).FollowingCount == 1,
            () => $"publishing {Broker(a).PublishingCount}+{Broker(b).PublishingCount}, following {Broker(a).FollowingCount}+{Broker(b).FollowingCount}");
        await WaitForListenersAsync(hash, clients, a, b);
    }

    [Fact]
    public async Task Twenty_identical_streaming_requests_split_across_two_replicas_make_one_upstream_call()
    {
        var a = Replica();
        var b = Replica();
        using var clientA = a.CreateGatewayClient();
        using var clientB = b.CreateGatewayClient();
        var body = OpenAIChat($"Across replicas {Guid.NewGuid():N}: count to five.", stream: true);
        var hash = await HashOfAsync(clientA, body);
        _provider.RespondOpenAIText("one two three four five", new OpenAIUsage(Prompt: 1500, Completion: 5));
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 20).Select(i => PostAsync(i % 2 == 0 ? clientA : clientB, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForOneLeaderOneFollowerAsync(hash, 20, a, b);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(1, _provider.CallCount);
        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.EndsWith("data: [DONE]\n\n", r.Body);
            Assert.Equal("one two three four five", OpenAIStreamText(r.Body));
        });
        Assert.Single(all.Select(r => r.Body).Distinct());
    }

    [Fact]
    public async Task Leader_replica_whose_clients_all_left_keeps_its_call_running_for_the_other_replica()
    {
        var a = Replica();
        var b = Replica();
        using var clientA = a.CreateGatewayClient();
        using var clientB = b.CreateGatewayClient();
        var body = OpenAIChat($"Hold for the other replica {Guid.NewGuid():N}.", stream: true);
        var hash = await HashOfAsync(clientA, body);
        var rest = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _provider.Respond(TwoPartOpenAIStream(["Still ", "going "], ["for ", "you."], rest.Task, prompt: 700, completion: 4));

        using var leaderGone = new CancellationTokenSource();
        var (leaderResponse, leaderBody) = await OpenStreamAsync(clientA, Path, body, leaderGone.Token);
        var followers = Enumerable.Range(0, 4).Select(_ => PostAsync(clientB, Path, body)).ToArray();
        await WaitForOneLeaderOneFollowerAsync(hash, 5, a, b);
        await leaderGone.CancelAsync();
        leaderBody.Dispose();
        leaderResponse.Dispose();
        await WaitForListenersAsync(hash, 4, a, b);
        rest.SetResult();
        var all = await Task.WhenAll(followers);

        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("Still going for you.", OpenAIStreamText(r.Body));
            Assert.EndsWith("data: [DONE]\n\n", r.Body);
        });
        var upstream = Assert.Single(_provider.Requests);
        await WaitUntilAsync(() => upstream.Completed, () => "the leader's upstream call should run to its end");
        Assert.Equal(0, _provider.CancelledCount);
    }

    [Fact]
    public async Task Provider_error_from_the_leader_replica_reaches_the_follower_replica_with_the_same_status()
    {
        var a = Replica();
        var b = Replica();
        using var clientA = a.CreateGatewayClient();
        using var clientB = b.CreateGatewayClient();
        var body = OpenAIChat($"Rate limited {Guid.NewGuid():N}.", stream: false);
        var hash = await HashOfAsync(clientA, body);
        var error = FakeResponses.OpenAIErrorBody("slow down", "rate_limit_error", "rate_limit_exceeded");
        _provider.RespondError(429, error);
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 10).Select(i => PostAsync(i % 2 == 0 ? clientA : clientB, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForOneLeaderOneFollowerAsync(hash, 10, a, b);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(1, _provider.CallCount);
        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.Status);
            Assert.Equal(error, r.Body);
        });
    }

    [Fact]
    public async Task Follower_replica_makes_its_own_call_when_the_leader_replica_is_shut_down_before_answering()
    {
        var a = Replica();
        var b = Replica();
        using var clientA = a.CreateGatewayClient();
        using var clientB = b.CreateGatewayClient();
        var body = OpenAIChat($"Leader goes away {Guid.NewGuid():N}.", stream: true);
        var hash = await HashOfAsync(clientA, body);
        _provider.RespondOpenAIText("answered by the survivor", new OpenAIUsage(Prompt: 400, Completion: 4));
        _provider.CloseGate();

        // A leads (its call waits at the gate); B's clients follow it.
        using var leaderGone = new CancellationTokenSource();
        var leader = PostAsync(clientA, Path, body, leaderGone.Token);
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitUntilAsync(() => Broker(a).PublishingCount == 1, () => "A should lead");
        var followers = Enumerable.Range(0, 5).Select(_ => PostAsync(clientB, Path, body)).ToArray();
        await WaitForOneLeaderOneFollowerAsync(hash, 6, a, b);

        // A goes away without an answer: its client is dropped and the process stops.
        await leaderGone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leader);
        await a.DisposeAsync();
        _gateways.Remove(a);

        await _provider.WaitForCallsAsync(2, Bounded);
        _provider.OpenGate();
        var all = await Task.WhenAll(followers);

        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("answered by the survivor", OpenAIStreamText(r.Body));
            Assert.EndsWith("data: [DONE]\n\n", r.Body);
        });
        Assert.Equal(2, _provider.CallCount); // A's abandoned call and B's own
    }

    [Fact]
    public async Task Follower_replica_makes_its_own_call_after_the_lease_when_the_leader_replica_loses_redis()
    {
        await using var relay = new TcpRelay(_redis.Port);
        var a = Replica(relay.RedisConnectionString);
        var b = Replica();
        using var clientA = a.CreateGatewayClient();
        using var clientB = b.CreateGatewayClient();
        var body = OpenAIChat($"Leader crashes {Guid.NewGuid():N}.", stream: false);
        var hash = await HashOfAsync(clientA, body);
        _provider.RespondOpenAIText("answered twice", new OpenAIUsage(Prompt: 400, Completion: 2));
        _provider.CloseGate();

        var leader = PostAsync(clientA, Path, body);
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitUntilAsync(() => Broker(a).PublishingCount == 1, () => "A should lead");
        var followers = Enumerable.Range(0, 5).Select(_ => PostAsync(clientB, Path, body)).ToArray();
        await WaitForOneLeaderOneFollowerAsync(hash, 6, a, b);

        // A can no longer renew its claim or publish: to B it is dead. B waits out the lease, then calls itself.
        relay.Cut();
        await _provider.WaitForCallsAsync(2, Bounded);
        _provider.OpenGate();
        var all = await Task.WhenAll(followers);
        var own = await leader;

        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Contains("answered twice", r.Body);
        });
        Assert.Equal(HttpStatusCode.OK, own.Status); // A still answers its own client from its own call
        Assert.Equal(2, _provider.CallCount);
    }

    [Fact]
    public async Task Finished_response_nobody_followed_leaves_no_claim_and_no_events_behind()
    {
        var a = Replica();
        using var clientA = a.CreateGatewayClient();
        var body = OpenAIChat($"Clean up {Guid.NewGuid():N}.", stream: false);

        var reply = await PostAsync(clientA, Path, body);
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var hash = reply.Header(GatewayHeaders.FullHash)!;
        await WaitUntilAsync(() => Broker(a).PublishingCount == 0, () => "the publisher should retire");

        await using var probe = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString);
        Assert.False(await probe.GetDatabase().KeyExistsAsync(RedisContract.DedupOwnerKey(hash)));
        // Nobody followed, so nothing was mirrored: the claim and its end were the call's only dedup writes.
        Assert.Empty(probe.GetServers()[0].Keys(pattern: RedisContract.DedupPrefix + "{" + hash + "}:*"));
    }
}
