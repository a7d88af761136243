using System.ClientModel;
using System.ClientModel.Primitives;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>OpenAI down entirely: <c>gpt-4o-mini</c> is answered by its configured Anthropic fallback, through the
/// unchanged OpenAI SDK, translated both ways, streams included.</summary>
public sealed class FallbackTests : GatewayWithFakeProvider
{
    protected override void Configure(Dictionary<string, string?> settings)
    {
        settings["Providers:OpenAI:ApiKey"] = "sk-openai-one,sk-openai-two";
        settings["TOKENROUTER_FALLBACKS"] = """{"gpt-4o-mini": ["claude-haiku-4-5", "deepseek-chat"]}""";
    }

    /// <summary>Every OpenAI deployment answers 503; Anthropic (and anything else) answers normally.</summary>
    private void OpenAIIsDown()
    {
        var down = FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("OpenAI is down"));
        var normal = FakeResponses.Auto();
        Provider.Respond((r, context) => r.Path == "/v1/chat/completions" && r.Header("Authorization") is { } a && a.StartsWith("Bearer sk-openai", StringComparison.Ordinal)
            ? down(r, context) : normal(r, context));
    }

    private ChatClient OpenAIChat() =>
        new("gpt-4o-mini", new ApiKeyCredential(GatewayFactory.ClientKey),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    [Fact]
    public async Task When_every_OpenAI_deployment_fails_the_Anthropic_fallback_answers_the_OpenAI_SDK()
    {
        OpenAIIsDown();

        var result = await OpenAIChat().CompleteChatAsync([new UserChatMessage("Hello?")]);

        Assert.Equal(FakeResponses.DefaultText, result.Value.Content[0].Text);
        Assert.Equal("claude-haiku-4-5", result.Value.Model);
        Assert.True(result.GetRawResponse().Headers.TryGetValue(GatewayHeaders.Fallback, out var fallback));
        Assert.Equal("claude-haiku-4-5", fallback);
        var anthropic = Assert.Single(Provider.Requests, r => r.IsAnthropicMessages);
        Assert.Equal("claude-haiku-4-5", anthropic.Model);
        Assert.Equal(2, Provider.Requests.Count(r => r.Path == "/v1/chat/completions")); // both OpenAI keys were tried first
        await AssertBilledAsAsync("claude-haiku-4-5", "anthropic");
    }

    [Fact]
    public async Task A_streamed_request_falls_back_too_and_says_which_model_served()
    {
        OpenAIIsDown();

        var text = "";
        var models = new HashSet<string>();
        await foreach (var update in OpenAIChat().CompleteChatStreamingAsync([new UserChatMessage("Hello, streamed?")]))
        {
            text += string.Concat(update.ContentUpdate.Select(p => p.Text));
            if (!string.IsNullOrEmpty(update.Model)) models.Add(update.Model);
        }

        Assert.Equal(FakeResponses.DefaultText, text);
        Assert.Equal(["claude-haiku-4-5"], models);
        Assert.True(Assert.Single(Provider.Requests, r => r.IsAnthropicMessages).IsStreaming);
        await AssertBilledAsAsync("claude-haiku-4-5", "anthropic");
    }

    [Fact]
    public async Task When_the_first_fallback_fails_too_the_next_one_answers()
    {
        var down = FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("down"));
        var normal = FakeResponses.Auto();
        // OpenAI and Anthropic down; DeepSeek (same fake, its own key) up.
        Provider.Respond((r, context) => r.Header("Authorization") == "Bearer sk-upstream-deepseek" ? normal(r, context) : down(r, context));

        var result = await OpenAIChat().CompleteChatAsync([new UserChatMessage("Anyone?")]);

        Assert.Equal("deepseek-chat", result.Value.Model);
        Assert.True(result.GetRawResponse().Headers.TryGetValue(GatewayHeaders.Fallback, out var fallback));
        Assert.Equal("deepseek-chat", fallback);
        await AssertBilledAsAsync("deepseek-chat", "deepseek");
    }

    [Fact]
    public async Task A_model_without_fallbacks_gets_the_providers_error()
    {
        OpenAIIsDown();
        using var client = Gateway.CreateGatewayClient();

        using var response = await client.PostAsync("v1/chat/completions",
            new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.False(response.Headers.Contains(GatewayHeaders.Fallback));
        Assert.DoesNotContain(Provider.Requests, r => r.IsAnthropicMessages);
    }

    /// <summary>The failed call keeps its own record; the answer is billed to the model and provider that served it.</summary>
    private async Task AssertBilledAsAsync(string model, string provider)
    {
        var sink = Gateway.Service<InMemoryUsageSink>();
        await Eventually.TrueAsync(() => sink.Snapshot().Any(r => r.Status == 200), "the fallback's usage record");
        var served = Assert.Single(sink.Snapshot(), r => r.Status == 200);
        Assert.Equal(model, served.Model);
        Assert.Equal(provider, served.Provider);
        Assert.False(served.Usage.IsEmpty);
        Assert.Contains(sink.Snapshot(), r => r.Model == "gpt-4o-mini" && r.Status == 503);
        Assert.Equal(sink.Snapshot().Count, sink.Snapshot().Select(r => r.RequestId).Distinct().Count());
    }
}
