using System.Net;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>
/// With a global dedup scope, identical requests from different keys share one upstream call. A leader refused before
/// its call leaves (its own quota here) must not pass that refusal on: whoever followed it starts over under its own
/// key. Real Redis holds the keys and quotas; a relay in front of it holds the leader's quota check until the second
/// request has joined.
/// </summary>
public sealed class LeaderRefusalTests : IAsyncLifetime
{
    private const string Path = "v1/chat/completions";
    private RedisServer _redis = null!;
    private TcpRelay _relay = null!;
    private FakeProvider _provider = null!;
    private GatewayFactory _gateway = null!;
    private readonly string _broke = "sk-tr-test-broke-" + Guid.NewGuid().ToString("N");
    private readonly string _funded = "sk-tr-test-funded-" + Guid.NewGuid().ToString("N");
    private readonly string _miniOnly = "sk-tr-test-mini-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.GetSharedAsync();
        _relay = new TcpRelay(_redis.Port);
        _provider = await FakeProvider.StartAsync();
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString))
        {
            var db = redis.GetDatabase();
            await WriteKeyAsync(db, _broke, quotaUsd: "0.000001"); // below any gpt-4o reservation
            await WriteKeyAsync(db, _funded, quotaUsd: "10");
            await WriteKeyAsync(db, _miniOnly, quotaUsd: "10");
            await db.HashSetAsync(RedisContract.ApiKeyHashKey(RedisContract.HashClientKey(_miniOnly)), RedisContract.KeyFields.Models, "gpt-4o-mini");
        }
        var settings = GatewayFactory.ProvidersAt(_provider);
        settings["ConnectionStrings:redis"] = _relay.RedisConnectionString;
        settings["Gateway:DedupScope"] = "Global";
        _gateway = new GatewayFactory(settings);
    }

    public async Task DisposeAsync()
    {
        _relay.Resume();
        await _gateway.DisposeAsync();
        await _provider.DisposeAsync();
        await _relay.DisposeAsync();
    }

    private static Task WriteKeyAsync(IDatabase db, string key, string quotaUsd) =>
        db.HashSetAsync(RedisContract.ApiKeyHashKey(RedisContract.HashClientKey(key)),
        [
            new(RedisContract.KeyFields.Id, "key-" + key[^8..]),
            new(RedisContract.KeyFields.Name, "leader-refusal test"),
            new(RedisContract.KeyFields.QuotaUsd, quotaUsd),
            new(RedisContract.KeyFields.Enabled, "1"),
        ]);

    [Fact]
    public async Task A_follower_of_a_leader_refused_by_its_own_quota_is_answered_under_its_own_key()
    {
        using var broke = _gateway.CreateGatewayClient(_broke);
        using var funded = _gateway.CreateGatewayClient(_funded);
        var body = OpenAIChat("Which key pays for this?", stream: false);

        // Both keys known to the gateway (cached), and the request's FullHash learned — the same for both keys here.
        var hash = await FullHashOfAsync(funded, Path, body);
        await WaitForFlightEndAsync(_redis, hash);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await PostAsync(broke, Path, OpenAIChat("warm-up", stream: false))).Status);
        _provider.Reset();
        _provider.RespondOpenAIText("Each key pays for its own.", new OpenAIUsage(Prompt: 900, Completion: 7));

        _relay.Pause(); // the leader's quota check waits at Redis
        var leader = PostAsync(broke, Path, body);
        await WaitForListenersAsync(hash, 1, _gateway);
        var follower = PostAsync(funded, Path, body);
        await WaitForListenersAsync(hash, 2, _gateway);
        _relay.Resume();

        var refused = await leader;
        var answered = await follower;
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.Status);
        Assert.Contains("insufficient_quota", refused.Body);
        Assert.Equal(HttpStatusCode.OK, answered.Status);
        Assert.Contains("Each key pays for its own.", answered.Body);
        Assert.Null(answered.Header(GatewayHeaders.Deduplicated)); // it made the call itself, on its own quota
        Assert.Equal(1, _provider.CallCount);
    }

    [Fact]
    public async Task A_key_may_not_follow_another_keys_request_for_a_model_outside_its_allow_list()
    {
        using var funded = _gateway.CreateGatewayClient(_funded);
        using var miniOnly = _gateway.CreateGatewayClient(_miniOnly);
        var body = OpenAIChat("May I read this answer?", stream: false);
        await WaitForFlightEndAsync(_redis, await FullHashOfAsync(funded, Path, body)); // (also gets the funded key cached)
        _provider.Reset();
        _provider.RespondOpenAIText("Only if you may use gpt-4o.", new OpenAIUsage(Prompt: 900, Completion: 7));

        _provider.CloseGate();
        var leader = PostAsync(funded, Path, body);
        await _provider.WaitForWaitingAtGateAsync(1, TimeSpan.FromSeconds(10));
        var follower = await PostAsync(miniOnly, Path, body);
        _provider.OpenGate();

        Assert.Equal(HttpStatusCode.Forbidden, follower.Status);
        Assert.Contains("model_not_allowed", follower.Body);
        Assert.Equal(HttpStatusCode.OK, (await leader).Status);
        Assert.Equal(1, _provider.CallCount); // before the allow-list held for followers, it was answered from this call
    }
}
