using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>The model group <c>fast</c> = gpt-4o-mini, then claude-haiku-4-5, over real HTTP through the official OpenAI
/// SDK: its first member serves; when OpenAI fails or is saturated, the next member does and says so.</summary>
public sealed class ModelGroupTests : GatewayWithFakeProvider
{
    private const string OpenAIKey = "sk-group-openai-0123456789";

    protected override void Configure(Dictionary<string, string?> settings)
    {
        settings["Providers:OpenAI:ApiKey"] = null;
        settings["Providers:OpenAI:Deployments:0:ApiKey"] = OpenAIKey;
        settings["Providers:OpenAI:Deployments:0:MaxConcurrency"] = "1";
        settings["TOKENROUTER_MODEL_GROUPS"] = """{"fast": ["gpt-4o-mini", "claude-haiku-4-5"]}""";
    }

    private ChatClient Fast() =>
        new("fast", new ApiKeyCredential(GatewayFactory.ClientKey),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    private static bool IsOpenAI(RecordedRequest r) => r.Header("Authorization") == "Bearer " + OpenAIKey;

    [Fact]
    public async Task The_groups_first_member_serves_and_is_named_in_the_answer_and_the_bill()
    {
        var result = await Fast().CompleteChatAsync([new UserChatMessage("Hello, group?")]);

        Assert.Equal(FakeResponses.DefaultText, result.Value.Content[0].Text);
        Assert.Equal("gpt-4o-mini", result.Value.Model);
        Assert.False(result.GetRawResponse().Headers.TryGetValue(GatewayHeaders.Fallback, out _));
        var sent = Assert.Single(Provider.Requests);
        Assert.Equal("gpt-4o-mini", sent.Model);
        var sink = Gateway.Service<InMemoryUsageSink>();
        await Eventually.TrueAsync(() => sink.Snapshot().Count == 1, "the request's usage record");
        var record = Assert.Single(sink.Snapshot());
        Assert.Equal(("gpt-4o-mini", "openai", 200), (record.Model, record.Provider, record.Status));
    }

    [Fact]
    public async Task When_the_first_members_provider_fails_the_next_member_serves_with_the_fallback_header()
    {
        var down = FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("OpenAI is down"));
        var normal = FakeResponses.Auto();
        Provider.Respond((r, context) => IsOpenAI(r) ? down(r, context) : normal(r, context));

        var result = await Fast().CompleteChatAsync([new UserChatMessage("Anyone there?")]);

        Assert.Equal(FakeResponses.DefaultText, result.Value.Content[0].Text);
        Assert.Equal("claude-haiku-4-5", result.Value.Model);
        Assert.True(result.GetRawResponse().Headers.TryGetValue(GatewayHeaders.Fallback, out var fallback));
        Assert.Equal("claude-haiku-4-5", fallback);
        Assert.Equal("claude-haiku-4-5", Assert.Single(Provider.Requests, r => r.IsAnthropicMessages).Model);
        var sink = Gateway.Service<InMemoryUsageSink>();
        await Eventually.TrueAsync(() => sink.Snapshot().Any(r => r.Status == 200), "the serving member's usage record");
        var served = Assert.Single(sink.Snapshot(), r => r.Status == 200);
        Assert.Equal(("claude-haiku-4-5", "anthropic"), (served.Model, served.Provider));
        Assert.Contains(sink.Snapshot(), r => r.Model == "gpt-4o-mini" && r.Status == 503);
    }

    [Fact]
    public async Task A_streamed_group_request_falls_back_too()
    {
        var down = FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("OpenAI is down"));
        var normal = FakeResponses.Auto();
        Provider.Respond((r, context) => IsOpenAI(r) ? down(r, context) : normal(r, context));

        var text = "";
        var models = new HashSet<string>();
        await foreach (var update in Fast().CompleteChatStreamingAsync([new UserChatMessage("Stream, anyone?")]))
        {
            text += string.Concat(update.ContentUpdate.Select(p => p.Text));
            if (!string.IsNullOrEmpty(update.Model)) models.Add(update.Model);
        }

        Assert.Equal(FakeResponses.DefaultText, text);
        Assert.Equal(["claude-haiku-4-5"], models);
    }

    [Fact]
    public async Task When_the_first_members_deployments_are_all_saturated_the_next_member_serves()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var normal = FakeResponses.Auto();
        Provider.Respond(async (r, context) =>
        {
            if (IsOpenAI(r)) await release.Task.WaitAsync(context.RequestAborted);
            await normal(r, context);
        });
        using var client = Gateway.CreateGatewayClient();
        // Holds OpenAI's only slot (MaxConcurrency 1).
        var holding = client.PostAsync("v1/chat/completions",
            ChatCompletionsApiTests.Json("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hold the slot"}]}"""));
        await Provider.WaitForCallsAsync(1, TimeSpan.FromSeconds(30));

        var result = await Fast().CompleteChatAsync([new UserChatMessage("Quick, please")]);

        Assert.Equal("claude-haiku-4-5", result.Value.Model);
        Assert.True(result.GetRawResponse().Headers.TryGetValue(GatewayHeaders.Fallback, out var fallback));
        Assert.Equal("claude-haiku-4-5", fallback);
        Assert.Single(Provider.Requests, IsOpenAI); // the saturated deployment was not called again
        release.SetResult();
        using var held = await holding;
        Assert.Equal(HttpStatusCode.OK, held.StatusCode);
    }

    [Fact]
    public async Task A_group_serves_the_messages_api_too_and_is_listed_by_the_models_endpoint()
    {
        using var client = Gateway.CreateGatewayClient();
        using (var response = await client.PostAsync("v1/messages",
            ChatCompletionsApiTests.Json("""{"model":"fast","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("gpt-4o-mini", message.RootElement.GetProperty("model").GetString());
        }

        using var models = JsonDocument.Parse(await client.GetStringAsync("v1/models"));
        var fast = Assert.Single(models.RootElement.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == "fast");
        Assert.Equal("tokenrouter", fast.GetProperty("owned_by").GetString());
    }
}
