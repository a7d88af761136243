using System.Net;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>
/// A follower whose leader is refused before reaching the provider starts over (<c>DedupCoordinator</c>): twice at
/// most after its first try, then it gives up with a 503 rather than loop. The test plays the refused leaders itself,
/// through the gateway's own <see cref="InflightRegistry"/>: each next leader is in place before the current one is
/// refused, so the follower can only join it when it starts over — no race decides who leads.
/// </summary>
public sealed class DedupStartOverTests : GatewayWithFakeProvider
{
    private const string Path = "v1/chat/completions";

    [Fact]
    public async Task A_follower_whose_leaders_are_refused_three_times_in_a_row_gets_503_dedup_contention()
    {
        var (client, hash, body) = await LearnHashAsync("Who leads this time?");
        using var _ = client;

        var reply = await RefuseLeadersAsync(hash, refusals: 3, () => PostAsync(client, Path, body));

        var answer = await reply;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.Status);
        Assert.Contains("\"code\":\"dedup_contention\"", answer.Body);
        Assert.Equal("1", answer.Header("Retry-After"));
        Assert.Equal(0, Provider.CallCount); // it never made a call of its own
    }

    [Fact]
    public async Task A_follower_whose_leaders_are_refused_twice_then_leads_itself_and_is_answered()
    {
        var (client, hash, body) = await LearnHashAsync("Who leads after two refusals?");
        using var _ = client;
        Provider.RespondOpenAIText("The third time, I lead.", new OpenAIUsage(Prompt: 900, Completion: 6));

        var reply = await RefuseLeadersAsync(hash, refusals: 2, () => PostAsync(client, Path, body));

        var answer = await reply;
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Contains("The third time, I lead.", answer.Body);
        Assert.Equal(1, Provider.CallCount);
    }

    private async Task<(HttpClient Client, string Hash, string Body)> LearnHashAsync(string prompt)
    {
        var client = Gateway.CreateGatewayClient();
        var body = OpenAIChat(prompt, stream: false);
        var hash = await FullHashOfAsync(client, Path, body);
        // Its flight may still be leaving the registry (a clean-clone run found it there when the test took the lead).
        var registry = Gateway.Service<InflightRegistry>();
        await WaitUntilAsync(() => registry.ListenersOf(hash) == 0, () => $"the flight that taught the hash to end, {registry.ListenersOf(hash)} listen");
        Provider.Reset();
        return (client, hash, body);
    }

    /// <summary>Leads the flight of <paramref name="hash"/>, then sends the request, and refuses <paramref name="refusals"/>
    /// leaders in a row, each once the request has joined; after the last refusal nobody leads, so the request may lead
    /// itself. The lead is taken before the request is sent: otherwise the request could get there first.</summary>
    private async Task<Task<GatewayReply>> RefuseLeadersAsync(string hash, int refusals, Func<Task<GatewayReply>> send)
    {
        var registry = Gateway.Service<InflightRegistry>();
        var leader = Lead(registry, hash);
        var reply = send();
        for (var refusal = 1; refusal <= refusals; refusal++)
        {
            await WaitUntilAsync(() => reply.IsCompleted || registry.ListenersOf(hash) == 2,
                () => $"refusal {refusal}: expected the request to follow, {registry.ListenersOf(hash)} listen");
            Assert.False(reply.IsCompleted, $"the request ended before refusal {refusal}");
            registry.Remove(leader);
            var next = refusal < refusals ? Lead(registry, hash) : null;
            leader.Reject(new ApiError(429, "rate_limit_error", "This leader's own limit.", "rate_limit_exceeded"));
            leader.Leave();
            if (next is not null) leader = next;
        }
        return reply;
    }

    private static InflightExchange Lead(InflightRegistry registry, string hash)
    {
        var exchange = registry.Join(hash, stream: false, out var leader);
        Assert.True(leader, "nobody else may be in flight for this hash");
        return exchange;
    }
}
