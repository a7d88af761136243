using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Anthropic;
using Anthropic.Models.Messages;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// The Anthropic-compatible <c>POST /v1/messages</c> driven by the official Anthropic SDK, against each provider type
/// (OpenAI, DeepSeek and Anthropic format) served by the fake provider over real HTTP.
/// </summary>
public sealed partial class MessagesApiTests : GatewayWithFakeProvider
{
    /// <summary>A model of each provider, answered whole and streamed.</summary>
    public static TheoryData<string, bool> EveryProviderStreamedOrNot => new()
    {
        { "gpt-4o", false }, { "gpt-4o", true },
        { "deepseek-chat", false }, { "deepseek-chat", true },
        { "claude-sonnet-4-5", false }, { "claude-sonnet-4-5", true },
    };

    private AnthropicClient Client() => Matrix.AnthropicClient(Gateway);

    // ───────────────────────────── text ─────────────────────────────

    [Theory]
    [InlineData("gpt-4o")]
    [InlineData("deepseek-chat")]
    [InlineData("claude-sonnet-4-5")]
    public async Task Non_streaming_text_reaches_the_anthropic_sdk_from_every_provider_type(string model)
    {
        Matrix.RespondText(Provider, model, "Bonjour from upstream", input: 42, output: 7);
        var request = new MessageCreateParams
        {
            Model = model,
            MaxTokens = 256,
            System = "Answer in French.",
            Messages = [new UserMessageParam("Say hello")],
        };

        var message = await Client().Messages.Create(request);

        Assert.True(Assert.Single(message.Content).TryPickText(out var text));
        Assert.Equal("Bonjour from upstream", text.Text);
        Assert.Equal("end_turn", message.StopReason!.Raw());
        Assert.Equal(model, message.Model.Raw());
        Assert.StartsWith("msg_", message.ID, StringComparison.Ordinal);
        Assert.Equal(42, message.Usage.InputTokens);
        Assert.Equal(7, message.Usage.OutputTokens);

        var upstream = Assert.Single(Provider.Requests);
        Matrix.AssertReachedProvider(upstream, model);
        Assert.False(upstream.IsStreaming);
        var sent = upstream.Json!.Value;
        switch (Matrix.KindOf(model))
        {
            case ProviderType.Anthropic:
                Assert.Equal("Answer in French.", Matrix.TextOf(sent.GetProperty("system")));
                Assert.Equal(256, sent.GetProperty("max_tokens").GetInt32());
                Assert.Equal("Say hello", Matrix.TextOf(Assert.Single(sent.GetProperty("messages").EnumerateArray()).GetProperty("content")));
                break;
            default:
                var messages = sent.GetProperty("messages");
                Assert.Equal(["system", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
                Assert.Equal("Answer in French.", messages[0].GetProperty("content").GetString());
                Assert.Equal("Say hello", messages[1].GetProperty("content").GetString());
                // OpenAI's current name for the limit; DeepSeek only knows max_tokens.
                var limit = Matrix.KindOf(model) == ProviderType.OpenAI ? "max_completion_tokens" : "max_tokens";
                Assert.Equal(256, sent.GetProperty(limit).GetInt32());
                break;
        }
    }

    [Theory]
    [InlineData("gpt-4o")]
    [InlineData("deepseek-chat")]
    [InlineData("claude-sonnet-4-5")]
    public async Task Streaming_text_reaches_the_anthropic_sdk_as_deltas_with_usage_and_stop_from_every_provider_type(string model)
    {
        const string text = "one two three four five six seven eight";
        Matrix.RespondText(Provider, model, text, input: 42, output: 8);

        var received = new StringBuilder();
        var deltas = 0;
        RawMessageStartEvent? start = null;
        RawMessageDeltaEvent? end = null;
        var stops = 0;
        var order = new List<string>();
        await foreach (var e in Client().Messages.CreateStreaming(Matrix.AnthropicParams(model, [new UserMessageParam("Count")])))
        {
            if (e.TryPickStart(out var s))
            {
                start = s;
                order.Add("message_start");
            }
            else if (e.TryPickContentBlockDelta(out var blockDelta) && blockDelta.Delta.TryPickText(out var piece))
            {
                deltas++;
                received.Append(piece.Text);
            }
            else if (e.TryPickDelta(out var messageDelta))
            {
                end = messageDelta;
                order.Add("message_delta");
            }
            else if (e.TryPickStop(out _))
            {
                stops++;
                order.Add("message_stop");
            }
        }

        Assert.Equal(["message_start", "message_delta", "message_stop"], order);
        Assert.Equal(text, received.ToString());
        Assert.True(deltas > 1, $"the text should arrive as several deltas, got {deltas}");
        Assert.NotNull(start);
        Assert.Equal(model, start.Message.Model.Raw());
        Assert.NotNull(end);
        Assert.Equal("end_turn", end.Delta.StopReason!.Raw());
        Assert.Equal(42, end.Usage.InputTokens);
        Assert.Equal(8, end.Usage.OutputTokens);
        Assert.Equal(1, stops);

        var upstream = Assert.Single(Provider.Requests);
        Matrix.AssertReachedProvider(upstream, model);
        Assert.True(upstream.IsStreaming);
        if (Matrix.KindOf(model) != ProviderType.Anthropic)
        {
            Assert.True(upstream.IncludeUsage, "an OpenAI-format provider is asked for the stream's usage");
        }
    }

    [Theory]
    [InlineData("gpt-4o")]
    [InlineData("deepseek-chat")]
    [InlineData("claude-sonnet-4-5")]
    public async Task Streamed_message_aggregated_by_the_anthropic_sdk_carries_the_providers_usage(string model)
    {
        var bill = Bill.For(model);
        bill.Respond(Provider);

        var message = await Client().Messages.CreateStreaming(Matrix.AnthropicParams(model, [new UserMessageParam("bill me")])).Aggregate();

        Assert.True(Assert.Single(message.Content).TryPickText(out var text));
        Assert.Equal("billed", text.Text);
        Assert.Equal("end_turn", message.StopReason!.Raw());
        Assert.Equal(bill.Uncached, message.Usage.InputTokens);
        Assert.Equal(bill.CacheRead, message.Usage.CacheReadInputTokens);
        Assert.Equal(bill.CacheWrite5m + bill.CacheWrite1h, message.Usage.CacheCreationInputTokens);
        Assert.Equal(bill.Output, message.Usage.OutputTokens);
    }

    // ───────────────────────────── tool round trip ─────────────────────────────

    [Theory]
    [MemberData(nameof(EveryProviderStreamedOrNot))]
    public async Task Tool_round_trip_from_the_anthropic_sdk_reaches_each_provider_in_its_own_format(string model, bool stream)
    {
        // Turn 1: the model asks for the tool.
        Matrix.RespondToolCall(Provider, model, Matrix.WeatherTool, Matrix.WeatherArguments);
        MessageParam question = new UserMessageParam(Matrix.WeatherQuestion);

        var (id, name, input) = await ToolTurnAsync(model, stream, [question]);

        Assert.Equal(Matrix.WeatherTool, name);
        Assert.False(string.IsNullOrEmpty(id));
        Matrix.AssertSameJson(Matrix.WeatherArguments, input);
        AssertToolDefinitionSent(Provider.Requests[0], model);

        // Turn 2: the assistant's tool_use and the user's tool_result go back; the model answers in text.
        Matrix.RespondText(Provider, model, "18°C and sunny in Paris.", input: 120, output: 9);
        var toolUse = new ToolUseBlockParam
        {
            ID = id,
            Name = name,
            Input = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(input)!,
        };
        var toolResult = new ToolResultBlockParam(id) { Content = Matrix.WeatherResult };
        var answer = await TextTurnAsync(model, stream,
        [
            question,
            new AssistantMessageParam(new List<ContentBlockParam> { toolUse }),
            new UserMessageParam(new List<ContentBlockParam> { toolResult }),
        ]);

        Assert.Equal("18°C and sunny in Paris.", answer);
        var turn2 = Provider.Requests[1];
        Assert.Equal(stream, turn2.IsStreaming);
        if (Matrix.KindOf(model) == ProviderType.Anthropic) AssertAnthropicToolRoundTrip(turn2, id);
        else Matrix.AssertOpenAIToolRoundTrip(turn2, id, Matrix.WeatherQuestion);
    }

    /// <summary>
    /// DeepSeek's chat API takes only string <c>content</c> ("invalid type: sequence, expected a string" otherwise), while
    /// Anthropic clients (Claude Code among them) send system prompts, user turns and assistant turns as text blocks.
    /// </summary>
    [Fact]
    public async Task Deepseek_receives_string_content_when_an_anthropic_client_sends_text_blocks()
    {
        Provider.RespondDeepSeekText("18°C and sunny in Paris.", new OpenAIUsage(120, 9));
        const string callId = "call_weather_1";
        var request = new MessageCreateParams
        {
            Model = "deepseek-chat",
            MaxTokens = 256,
            System = new List<TextBlockParam> { new("You are a weather bot."), new("Answer briefly.") },
            Tools = [Matrix.AnthropicWeatherTool()],
            Messages =
            [
                new UserMessageParam(new List<ContentBlockParam> { new TextBlockParam(Matrix.WeatherQuestion) }),
                new AssistantMessageParam(new List<ContentBlockParam>
                {
                    new TextBlockParam("Let me check."),
                    new ToolUseBlockParam
                    {
                        ID = callId,
                        Name = Matrix.WeatherTool,
                        Input = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(Matrix.WeatherArguments)!,
                    },
                }),
                new UserMessageParam(new List<ContentBlockParam>
                {
                    new ToolResultBlockParam(callId) { Content = new List<Block> { new TextBlockParam(Matrix.WeatherResult) } },
                    new TextBlockParam("One sentence, please."),
                }),
            ],
        };

        var message = await Client().Messages.Create(request);

        Assert.True(Assert.Single(message.Content).TryPickText(out var text));
        Assert.Equal("18°C and sunny in Paris.", text.Text);
        var messages = Assert.Single(Provider.Requests).Json!.Value.GetProperty("messages");
        Assert.Equal(["system", "user", "assistant", "tool", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.All(messages.EnumerateArray(), m => Assert.True(
            m.GetProperty("content").ValueKind is JsonValueKind.String or JsonValueKind.Null,
            $"DeepSeek takes only string content, got {m}"));
        Assert.Contains("You are a weather bot.", messages[0].GetProperty("content").GetString());
        Assert.Contains("Answer briefly.", messages[0].GetProperty("content").GetString());
        Assert.Equal(Matrix.WeatherQuestion, messages[1].GetProperty("content").GetString());
        Assert.Equal("Let me check.", messages[2].GetProperty("content").GetString());
        Assert.Equal(callId, Assert.Single(messages[2].GetProperty("tool_calls").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal(callId, messages[3].GetProperty("tool_call_id").GetString());
        Assert.Equal(Matrix.WeatherResult, messages[3].GetProperty("content").GetString());
        Assert.Equal("One sentence, please.", messages[4].GetProperty("content").GetString());
    }

    private static void AssertToolDefinitionSent(RecordedRequest request, string model)
    {
        var tool = Assert.Single(request.Json!.Value.GetProperty("tools").EnumerateArray());
        if (Matrix.KindOf(model) == ProviderType.Anthropic)
        {
            Assert.Equal(Matrix.WeatherTool, tool.GetProperty("name").GetString());
            Assert.Equal("string", tool.GetProperty("input_schema").GetProperty("properties").GetProperty("city").GetProperty("type").GetString());
        }
        else
        {
            Assert.Equal("function", tool.GetProperty("type").GetString());
            Assert.Equal(Matrix.WeatherTool, tool.GetProperty("function").GetProperty("name").GetString());
            Assert.Equal("string", tool.GetProperty("function").GetProperty("parameters").GetProperty("properties").GetProperty("city").GetProperty("type").GetString());
        }
    }

    /// <summary>The Anthropic provider gets the blocks as the client sent them (the gateway may add cache breakpoints).</summary>
    private static void AssertAnthropicToolRoundTrip(RecordedRequest request, string id)
    {
        var messages = request.Json!.Value.GetProperty("messages");
        Assert.Equal(["user", "assistant", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(Matrix.WeatherQuestion, Matrix.TextOf(messages[0].GetProperty("content")));

        // Exactly the blocks the SDK sent; only a cache breakpoint may have been added.
        var toolUse = Assert.Single(messages[1].GetProperty("content").EnumerateArray());
        var expectedToolUse = new JsonObject
        {
            ["type"] = "tool_use",
            ["id"] = id,
            ["name"] = Matrix.WeatherTool,
            ["input"] = JsonNode.Parse(Matrix.WeatherArguments),
        };
        Matrix.AssertSameJson(expectedToolUse.ToJsonString(), WithoutCacheControl(toolUse));

        var toolResult = Assert.Single(messages[2].GetProperty("content").EnumerateArray());
        var expectedToolResult = new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = id, ["content"] = Matrix.WeatherResult };
        Matrix.AssertSameJson(expectedToolResult.ToJsonString(), WithoutCacheControl(toolResult));
    }

    private static string WithoutCacheControl(JsonElement block)
    {
        var node = JsonNode.Parse(block.GetRawText())!.AsObject();
        node.Remove("cache_control");
        return node.ToJsonString();
    }

    /// <summary>Turn 1 through the SDK: the tool_use block (id, name, input JSON), reassembled from deltas when streamed.</summary>
    private async Task<(string Id, string Name, string Input)> ToolTurnAsync(string model, bool stream, IReadOnlyList<MessageParam> messages)
    {
        var request = Matrix.AnthropicParams(model, messages, withTools: true);
        if (!stream)
        {
            var message = await Client().Messages.Create(request);
            Assert.Equal("tool_use", message.StopReason!.Raw());
            Assert.True(Assert.Single(message.Content).TryPickToolUse(out var block));
            return (block.ID, block.Name, JsonSerializer.Serialize(block.Input));
        }

        string? id = null, name = null, stopReason = null;
        var input = new StringBuilder();
        var pieces = 0;
        await foreach (var e in Client().Messages.CreateStreaming(request))
        {
            if (e.TryPickContentBlockStart(out var blockStart) && blockStart.ContentBlock.TryPickToolUse(out var toolUse))
            {
                id = toolUse.ID;
                name = toolUse.Name;
            }
            else if (e.TryPickContentBlockDelta(out var blockDelta) && blockDelta.Delta.TryPickInputJson(out var json))
            {
                pieces += json.PartialJson.Length > 0 ? 1 : 0;
                input.Append(json.PartialJson);
            }
            else if (e.TryPickDelta(out var messageDelta))
            {
                stopReason = messageDelta.Delta.StopReason?.Raw();
            }
        }

        Assert.Equal("tool_use", stopReason);
        Assert.True(pieces > 1, $"the input should arrive in several pieces, got {pieces}");
        Assert.NotNull(id);
        Assert.NotNull(name);
        return (id, name, input.ToString());
    }

    /// <summary>Turn 2 through the SDK: the final text, whole or from the stream.</summary>
    private async Task<string> TextTurnAsync(string model, bool stream, IReadOnlyList<MessageParam> messages)
    {
        var request = Matrix.AnthropicParams(model, messages, withTools: true);
        if (!stream)
        {
            var message = await Client().Messages.Create(request);
            Assert.Equal("end_turn", message.StopReason!.Raw());
            Assert.True(Assert.Single(message.Content).TryPickText(out var text));
            return text.Text;
        }

        var received = new StringBuilder();
        await foreach (var e in Client().Messages.CreateStreaming(request))
        {
            if (e.TryPickContentBlockDelta(out var blockDelta) && blockDelta.Delta.TryPickText(out var piece)) received.Append(piece.Text);
        }

        return received.ToString();
    }

    // ───────────────────────────── errors and keys ─────────────────────────────
}
