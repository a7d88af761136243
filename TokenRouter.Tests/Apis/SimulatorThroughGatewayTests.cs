using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>A gateway with no provider keys at all still works: the built-in simulator answers over real HTTP.</summary>
public sealed class SimulatorThroughGatewayTests : IAsyncLifetime
{
    private readonly GatewayFactory _gateway = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private ChatClient Client(string model) =>
        new(model, new ApiKeyCredential(GatewayFactory.ClientKey), new OpenAIClientOptions { Endpoint = new Uri(_gateway.BaseAddress, "v1") });

    [Fact]
    public async Task Openai_sdk_gets_replies_streams_and_tool_calls_from_the_simulator()
    {
        var client = Client("sim-openai");

        ChatCompletion reply = await client.CompleteChatAsync([new UserChatMessage("Hello simulator")]);
        var streamed = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Hello simulator")]))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        }
        var tool = ChatTool.CreateFunctionTool("get_weather", "Weather for a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));
        ChatCompletion toolCall = await client.CompleteChatAsync([new UserChatMessage("Weather in Oslo?")], new ChatCompletionOptions { Tools = { tool } });

        Assert.StartsWith("Simulated reply", reply.Content[0].Text);
        Assert.Equal(reply.Content[0].Text, streamed.ToString());
        var call = Assert.Single(toolCall.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.True(JsonDocument.Parse(call.FunctionArguments).RootElement.TryGetProperty("city", out _));
    }

    [Fact]
    public async Task Repeated_long_prompt_is_billed_with_cached_tokens()
    {
        using var http = _gateway.CreateGatewayClient();
        var longSystem = string.Join(' ', Enumerable.Repeat("You are a meticulous airline support agent.", 200));
        var body = JsonSerializer.Serialize(new
        {
            model = "sim-openai",
            messages = new object[] { new { role = "system", content = longSystem }, new { role = "user", content = "Change my flight" } },
        });

        using var first = await http.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
        using var second = await http.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("0", first.Headers.GetValues("x-tokenrouter-cached-tokens").Single());
        var cached = int.Parse(second.Headers.GetValues("x-tokenrouter-cached-tokens").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(cached >= 1024 && cached % 128 == 0, $"cached {cached}");
        Assert.True(decimal.Parse(second.Headers.GetValues("x-tokenrouter-cache-savings-usd").Single(), System.Globalization.CultureInfo.InvariantCulture) > 0);
    }

    [Fact]
    public async Task Models_lists_the_simulator_models_and_only_routable_ones()
    {
        using var http = _gateway.CreateGatewayClient();

        using var doc = JsonDocument.Parse(await http.GetStringAsync("v1/models"));

        var ids = doc.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains("sim-openai", ids);
        Assert.Contains("sim-anthropic", ids);
        Assert.Contains("sim-deepseek", ids);
        Assert.DoesNotContain("gpt-4o", ids); // no OpenAI key configured here
        Assert.Equal("list", doc.RootElement.GetProperty("object").GetString());
    }

    [Fact]
    public async Task Other_v1_endpoint_is_passed_to_the_simulator_and_its_404_comes_back_in_openai_shape()
    {
        using var http = _gateway.CreateGatewayClient();
        using var response = await http.GetAsync("v1/nothing-here");

        // No provider key here: the passthrough falls back to the simulator, which knows only chat routes.
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("sim-openai", response.Headers.GetValues("x-tokenrouter-provider").Single());
        var error = await ChatCompletionsApiTests.ErrorOf(response);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("sim-openai", error.GetProperty("message").GetString());
    }
}
