using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Tests.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>The "done means", as a new user would try it: <c>OPENAI_API_KEY=good,broken</c>.</summary>
public sealed class BrokenKeyTests : GatewayWithFakeProvider
{
    private const string Good = "sk-proj-good-0123456789abcdef", Broken = "sk-proj-revoked-0123456789abcdef";

    protected override void Configure(Dictionary<string, string?> settings)
    {
        settings["Providers:OpenAI:ApiKey"] = null;
        settings["OPENAI_API_KEY"] = $"{Good}, {Broken}";
    }

    [Fact]
    public async Task A_broken_key_is_cooled_down_and_every_request_succeeds()
    {
        var normal = FakeResponses.Auto();
        var revoked = FakeResponses.Error(401, FakeResponses.OpenAIErrorBody("Incorrect API key provided", "invalid_request_error", "invalid_api_key"));
        Provider.Respond((r, context) => FailoverTests.KeyOf(r) == Broken ? revoked(r, context) : normal(r, context));

        // Conversations with different system prompts (prefixes) spread over both keys.
        for (var i = 0; i < 20; i++)
        {
            var client = new ChatClient("gpt-4o-mini", new ApiKeyCredential(GatewayFactory.ClientKey),
                new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
            var reply = await client.CompleteChatAsync([new SystemChatMessage($"You are assistant number {i}."), new UserChatMessage("Hi")]);
            Assert.Equal(FakeResponses.DefaultText, reply.Value.Content[0].Text);
        }

        Assert.Equal(1, Provider.Requests.Count(r => FailoverTests.KeyOf(r) == Broken)); // tried once, then cooled down
        Assert.Equal(20, Provider.Requests.Count(r => FailoverTests.KeyOf(r) == Good));
        using var http = Gateway.CreateGatewayClient();
        using var doc = JsonDocument.Parse(await http.GetStringAsync("v1/tokenrouter/deployments"));
        var openai = doc.RootElement.GetProperty("data").EnumerateArray().Where(d => d.GetProperty("provider").GetString() == "openai").ToList();
        Assert.Equal(2, openai.Count);
        var cooled = Assert.Single(openai, d => d.GetProperty("health").GetString() == "cooling_down");
        Assert.Equal("auth", cooled.GetProperty("last_failure").GetString());
        Assert.StartsWith("openai-", cooled.GetProperty("id").GetString());
        Assert.DoesNotContain(Broken, doc.RootElement.GetRawText());
        Assert.DoesNotContain(Good, doc.RootElement.GetRawText());
    }
}
