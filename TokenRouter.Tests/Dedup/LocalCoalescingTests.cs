using System.Net;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>
/// In-flight deduplication inside one gateway (no Redis), over real HTTP against a fake provider: identical concurrent
/// requests are held at the provider's gate until every one of them has attached, then answered by one upstream call.
/// </summary>
public sealed class LocalCoalescingTests : IAsyncLifetime
{
    private const string OtherKey = "sk-tr-test-other-client-key-9876543210fedcba";
    private const string Path = "v1/chat/completions";
    private FakeProvider _provider = null!;
    private GatewayFactory? _gateway;

    public async Task InitializeAsync() => _provider = await FakeProvider.StartAsync();

    public async Task DisposeAsync()
    {
        if (_gateway is not null) await _gateway.DisposeAsync();
        await _provider.DisposeAsync();
    }

    private GatewayFactory Gateway(params (string Key, string Value)[] settings)
    {
        var all = GatewayFactory.ProvidersAt(_provider);
        foreach (var (key, value) in settings) all[key] = value;
        return _gateway = new GatewayFactory(all);
    }

    /// <summary>Learns the request's FullHash with one answered call, then forgets that call.</summary>
    private async Task<string> HashOfAsync(HttpClient client, string body, string path = Path, params (string Name, string Value)[] headers)
    {
        var hash = await FullHashOfAsync(client, path, body, headers);
        _provider.Reset();
        return hash;
    }

    [Fact]
    public async Task Fifty_identical_non_streaming_requests_make_one_upstream_call_and_get_identical_bodies()
    {
        var gateway = Gateway();
        using var client = gateway.CreateGatewayClient();
        var body = OpenAIChat("What is six times seven?", stream: false);
        var hash = await HashOfAsync(client, body);
        var usageBefore = gateway.Service<InMemoryUsageSink>().Snapshot().Count;
        _provider.RespondOpenAIText("Six times seven is 42.", new OpenAIUsage(Prompt: 1200, Completion: 8));
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 50).Select(_ => PostAsync(client, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForListenersAsync(hash, 50, gateway);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(1, _provider.CallCount);
        Assert.All(all, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Single(all.Select(r => r.Body).Distinct());
        Assert.Contains("Six times seven is 42.", all[0].Body);
        Assert.Equal(49, all.Count(r => r.Header(GatewayHeaders.Deduplicated) == "true"));

        // The leader pays; each follower is recorded as deduplicated at $0 with the leader's cost as its saving.
        await WaitUntilAsync(() => gateway.Service<InMemoryUsageSink>().Snapshot().Count >= usageBefore + 50, () => "usage records");
        var records = gateway.Service<InMemoryUsageSink>().Snapshot().Skip(usageBefore).ToList();
        Assert.Equal(50, records.Count);
        var leader = Assert.Single(records, r => !r.Deduplicated);
        Assert.True(leader.CostUsd > 0, "the leader's call is priced");
        var followers = records.Where(r => r.Deduplicated).ToList();
        Assert.Equal(49, followers.Count);
        Assert.All(followers, f =>
        {
            Assert.Equal(0m, f.CostUsd);
            Assert.Equal(leader.CostUsd, f.DedupSavingsUsd);
            Assert.Equal(leader.Usage, f.Usage);
            Assert.Equal(200, f.Status);
        });
    }

    [Fact]
    public async Task Fifty_identical_streaming_requests_make_one_upstream_call_and_get_identical_complete_streams()
    {
        var gateway = Gateway();
        using var client = gateway.CreateGatewayClient();
        var body = OpenAIChat("Count to four.", stream: true);
        var hash = await HashOfAsync(client, body);
        var usageBefore = gateway.Service<InMemoryUsageSink>().Snapshot().Count;
        _provider.RespondOpenAIText("one two three four", new OpenAIUsage(Prompt: 900, Completion: 4));
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 50).Select(_ => PostAsync(client, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForListenersAsync(hash, 50, gateway);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(1, _provider.CallCount);
        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("text/event-stream", r.ContentType);
            Assert.EndsWith("data: [DONE]\n\n", r.Body);
            Assert.Equal("one two three four", OpenAIStreamText(r.Body));
        });
        Assert.Single(all.Select(r => r.Body).Distinct());

        await WaitUntilAsync(() => gateway.Service<InMemoryUsageSink>().Snapshot().Count >= usageBefore + 50, () => "usage records");
        var records = gateway.Service<InMemoryUsageSink>().Snapshot().Skip(usageBefore).ToList();
        var leader = Assert.Single(records, r => !r.Deduplicated);
        Assert.Equal(900, leader.Usage.PromptTokens);
        Assert.All(records.Where(r => r.Deduplicated), f =>
        {
            Assert.Equal(0m, f.CostUsd);
            Assert.Equal(leader.CostUsd, f.DedupSavingsUsd);
            Assert.True(f.Stream);
        });
        Assert.Equal(49, records.Count(r => r.Deduplicated));
    }

    [Fact]
    public async Task Leader_client_leaving_mid_stream_neither_cuts_off_followers_nor_cancels_the_upstream_call()
    {
        var gateway = Gateway();
        using var client = gateway.CreateGatewayClient();
        var body = OpenAIChat("Tell a story in six words.", stream: true);
        var hash = await HashOfAsync(client, body);
        var rest = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _provider.Respond(TwoPartOpenAIStream(["Once ", "upon "], ["a ", "time, ", "the ", "end."], rest.Task, prompt: 500, completion: 6));

        // The leader's client reads the first bytes, the followers attach, then the leader's client goes away.
        using var leaderGone = new CancellationTokenSource();
        var (leaderResponse, leaderBody) = await OpenStreamAsync(client, Path, body, leaderGone.Token);
        var followers = Enumerable.Range(0, 5).Select(_ => PostAsync(client, Path, body)).ToArray();
        await WaitForListenersAsync(hash, 6, gateway);
        await leaderGone.CancelAsync();
        leaderBody.Dispose();
        leaderResponse.Dispose();
        await WaitForListenersAsync(hash, 5, gateway);
        rest.SetResult();
        var all = await Task.WhenAll(followers);

        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("Once upon a time, the end.", OpenAIStreamText(r.Body));
            Assert.EndsWith("data: [DONE]\n\n", r.Body);
        });
        var upstream = Assert.Single(_provider.Requests);
        await WaitUntilAsync(() => upstream.Completed, () => "the upstream call should run to its end");
        Assert.False(upstream.WasCancelled);
        Assert.Equal(0, _provider.CancelledCount);
    }

    [Theory]
    [InlineData(500, false)]
    [InlineData(429, false)]
    [InlineData(500, true)]
    [InlineData(429, true)]
    public async Task Provider_error_reaches_every_attached_client_with_the_same_status(int status, bool stream)
    {
        var gateway = Gateway();
        using var client = gateway.CreateGatewayClient();
        var body = OpenAIChat($"Fail with {status}, stream {stream}.", stream);
        var hash = await HashOfAsync(client, body);
        var error = FakeResponses.OpenAIErrorBody($"upstream says {status}", status == 429 ? "rate_limit_error" : "server_error");
        _provider.RespondError(status, error);
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 20).Select(_ => PostAsync(client, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForListenersAsync(hash, 20, gateway);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(1, _provider.CallCount);
        Assert.All(all, r =>
        {
            Assert.Equal((HttpStatusCode)status, r.Status);
            Assert.Equal(error, r.Body);
        });
    }

    [Fact]
    public async Task With_dedup_disabled_every_identical_request_makes_its_own_upstream_call()
    {
        var gateway = Gateway(("Gateway:DedupEnabled", "false"));
        using var client = gateway.CreateGatewayClient();
        var body = OpenAIChat("No coalescing, please.", stream: false);
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 10).Select(_ => PostAsync(client, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(10, Bounded);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(10, _provider.CallCount);
        Assert.All(all, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Null(r.Header(GatewayHeaders.Deduplicated));
        });
    }

    [Fact]
    public async Task Identical_requests_with_different_client_keys_never_share_an_upstream_call()
    {
        var gateway = Gateway(("Gateway:ApiKeys", $"{GatewayFactory.ClientKey},{OtherKey}"));
        using var first = gateway.CreateGatewayClient();
        using var second = gateway.CreateGatewayClient(OtherKey);
        var body = OpenAIChat("Same words, two tenants.", stream: false);
        var firstHash = await FullHashOfAsync(first, Path, body);
        var secondHash = await HashOfAsync(second, body);
        Assert.NotEqual(firstHash, secondHash);
        _provider.CloseGate();

        var replies = Enumerable.Range(0, 20).Select(i => PostAsync(i % 2 == 0 ? first : second, Path, body)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(2, Bounded);
        await WaitForListenersAsync(firstHash, 10, gateway);
        await WaitForListenersAsync(secondHash, 10, gateway);
        _provider.OpenGate();
        var all = await Task.WhenAll(replies);

        Assert.Equal(2, _provider.CallCount);
        Assert.All(all, r => Assert.Equal(HttpStatusCode.OK, r.Status));
        Assert.Equal(18, all.Count(r => r.Header(GatewayHeaders.Deduplicated) == "true"));
    }

    /// <summary>
    /// The FullHash covers the outbound bytes, the provider and the scope — not the client's API. An Anthropic client's
    /// <c>max_tokens</c> goes to an OpenAI-format provider as <c>max_completion_tokens</c>, so an OpenAI client that sends
    /// <c>max_completion_tokens</c> produces byte-identical outbound requests (the gateway asks for stream usage either
    /// way): the two share one call and each gets the answer in its own format. An OpenAI client sending the legacy
    /// <c>max_tokens</c> is passed through as such, so its bytes differ and it gets its own call.
    /// </summary>
    [Fact]
    public async Task OpenAI_and_Anthropic_clients_asking_the_same_share_one_call_and_each_get_their_own_format()
    {
        var gateway = Gateway();
        using var client = gateway.CreateGatewayClient();
        var openAIBody = OpenAIChat("Name a prime number.", stream: true, maxCompletionTokens: 64);
        var legacyOpenAIBody = OpenAIChat("Name a prime number.", stream: true, maxTokens: 64);
        var anthropicBody = AnthropicMessages("Name a prime number.", stream: true, model: "gpt-4o", maxTokens: 64);
        var openAIHash = await HashOfAsync(client, openAIBody);
        var legacyHash = await HashOfAsync(client, legacyOpenAIBody);
        var anthropicHash = await HashOfAsync(client, anthropicBody, "v1/messages");
        Assert.Equal(openAIHash, anthropicHash);
        Assert.NotEqual(legacyHash, anthropicHash);
        _provider.RespondOpenAIText("Seven is prime.", new OpenAIUsage(Prompt: 300, Completion: 4));
        _provider.CloseGate();

        var openAI = Enumerable.Range(0, 3).Select(_ => PostAsync(client, Path, openAIBody)).ToArray();
        var anthropic = Enumerable.Range(0, 3).Select(_ => PostAsync(client, "v1/messages", anthropicBody)).ToArray();
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForListenersAsync(openAIHash, 6, gateway);
        _provider.OpenGate();

        Assert.All(await Task.WhenAll(openAI), r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("Seven is prime.", OpenAIStreamText(r.Body));
            Assert.EndsWith("data: [DONE]\n\n", r.Body);
        });
        Assert.All(await Task.WhenAll(anthropic), r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.Equal("Seven is prime.", AnthropicStreamText(r.Body));
            Assert.Contains("event: message_stop", r.Body);
            Assert.DoesNotContain("[DONE]", r.Body);
        });
        Assert.Equal(1, _provider.CallCount);
    }

    /// <summary>
    /// <c>anthropic-beta</c> (and <c>anthropic-version</c>) are forwarded to an Anthropic provider and change what it does
    /// (e.g. <c>output-128k</c>, <c>context-1m</c>, thinking betas), so a response made under one client's betas must not be
    /// served to a client that asked for others. Fails today: the FullHash covers body, provider and scope only, so the
    /// second request joins the first and its own beta never reaches the provider.
    /// </summary>
    [Fact]
    public async Task Anthropic_clients_with_different_beta_headers_do_not_share_an_upstream_call()
    {
        var gateway = Gateway();
        using var client = gateway.CreateGatewayClient();
        var body = AnthropicMessages("Summarize the plot of Hamlet.", stream: false, model: "claude-sonnet-4-5", maxTokens: 64);
        (string, string)[] first = [("anthropic-version", "2023-06-01"), ("anthropic-beta", "output-128k-2025-02-19")];
        (string, string)[] second = [("anthropic-version", "2023-06-01"), ("anthropic-beta", "context-1m-2025-08-07")];
        var firstHash = await HashOfAsync(client, body, "v1/messages", first);
        _provider.RespondAnthropicText("A prince hesitates.", new AnthropicUsage(Input: 20, Output: 4));
        _provider.CloseGate();

        var one = PostAsync(client, "v1/messages", body, CancellationToken.None, first);
        await _provider.WaitForWaitingAtGateAsync(1, Bounded);
        var two = PostAsync(client, "v1/messages", body, CancellationToken.None, second);
        await WaitUntilAsync(() => _provider.WaitingAtGateCount == 2 || gateway.Service<InflightRegistry>().ListenersOf(firstHash) == 2,
            () => "the second request should either reach the provider or join the first");
        _provider.OpenGate();
        await Task.WhenAll(one, two);

        Assert.Equal(2, _provider.CallCount);
        Assert.Equal(["context-1m-2025-08-07", "output-128k-2025-02-19"],
            _provider.Requests.Select(r => r.Header("anthropic-beta") ?? "").Order().ToArray());
    }
}
