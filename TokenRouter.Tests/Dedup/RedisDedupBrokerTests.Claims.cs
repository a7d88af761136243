using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>Claims: who leads a request across replicas, and what a claim leaves behind when its call ends.</summary>
public sealed partial class RedisDedupBrokerTests
{
    [Fact]
    public async Task A_later_claim_of_the_same_request_never_replays_an_earlier_claims_events()
    {
        // Generous lease and leader wait: this is about which claim's events are read, not about noticing a dead leader
        // (the 1 s / 200 ms defaults of this class can lapse on a busy 2-core box and turn the follower into a fallback).
        var a = await ReplicaAsync(lease: TimeSpan.FromSeconds(5), leaderWait: TimeSpan.FromSeconds(3));
        var b = await ReplicaAsync(lease: TimeSpan.FromSeconds(5), leaderWait: TimeSpan.FromSeconds(3));
        var first = await LeadAsync(a);
        first.SetHead(200, "application/json");
        first.Append("{\"n\":1}"u8);
        first.Complete(default);
        await WaitUntilAsync(() => a.Broker.PublishingCount == 0, () => "the first call should finish publishing");

        var second = await LeadAsync(a);
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
        var following = NewExchange();
        var follow = b.Broker.FollowAsync(_key, following, NoOwnCall, CancellationToken.None);
        await MirroringAsync(second);
        second.SetHead(201, "application/json");
        second.Append("{\"n\":2}"u8);
        second.Complete(default);

        Assert.False(await follow.WaitAsync(Bounded));
        Assert.Equal(201, following.Status);
        Assert.Equal("{\"n\":2}"u8.ToArray(), Body(following));
    }

    [Fact]
    public async Task A_call_nobody_follows_writes_no_stream_and_ends_by_deleting_its_claim()
    {
        var a = await ReplicaAsync();
        var leading = await LeadAsync(a);

        await AnswerAsync(a, leading, "{\"alone\":true}", new Usage(3, 0, 0, 0, 1));
        var db = a.Connection.GetDatabase();
        Assert.False(await db.KeyExistsAsync(RedisContract.DedupOwnerKey(_key)));
        var written = a.Connection.GetServers()[0].Keys(pattern: RedisContract.DedupPrefix + "{" + _key + "}:events:*").ToList();
        Assert.Empty(written);
    }

    [Fact]
    public async Task A_request_sent_after_this_replicas_call_answered_leads_instead_of_replaying_that_answer()
    {
        var a = await ReplicaAsync();
        var b = await ReplicaAsync();
        // A's call has answered its client, and its publisher has not released the claim yet (it does so one round trip
        // after the answer): here it never hears of the end, so the claim stays.
        var answered = NewExchange();
        Assert.True(await a.Broker.TryClaimAsync(_key, CancellationToken.None));
        answered.Complete(new Usage(3, 0, 0, 0, 1));
        answered.Mirror = a.Broker.CreatePublisher(answered);
        var db = a.Connection.GetDatabase();
        var answeredClaim = (string?)await db.StringGetAsync(RedisContract.DedupOwnerKey(_key));

        Assert.True(await a.Broker.TryClaimAsync(_key, CancellationToken.None));
        var next = NewExchange();
        next.Mirror = a.Broker.CreatePublisher(next);
        Assert.NotEqual(answeredClaim, (string?)await db.StringGetAsync(RedisContract.DedupOwnerKey(_key)));
        // Another replica still follows the call in flight: the new one.
        Assert.False(await b.Broker.TryClaimAsync(_key, CancellationToken.None));
    }
}
