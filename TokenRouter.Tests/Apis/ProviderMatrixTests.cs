using System.ClientModel;
using System.ClientModel.Primitives;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Anthropic;
using Anthropic.Models.Messages;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;
using TokenUsage = TokenRouter.Gateway.Accounting.Usage;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// The provider matrix through the official OpenAI SDK (chat completions routed to the Anthropic and DeepSeek
/// providers), and the bill for every provider × client format: the usage the client reads in its own dialect and
/// the cost headers / usage record against a hand-computed bill from the list prices.
/// </summary>
public sealed class ProviderMatrixTests : GatewayWithFakeProvider
{
    // ───────────────────────────── OpenAI SDK → Anthropic / DeepSeek providers ─────────────────────────────

    [Theory]
    [InlineData("claude-sonnet-4-5")]
    [InlineData("deepseek-chat")]
    public async Task Openai_sdk_gets_a_non_streaming_reply_from_the_provider(string model)
    {
        Matrix.RespondText(Provider, model, "Bonjour from upstream", input: 42, output: 7);

        ChatCompletion completion = await OpenAIChat(model).CompleteChatAsync(
            [new SystemChatMessage("Answer in French."), new UserChatMessage("Say hello")]);

        Assert.Equal("Bonjour from upstream", Assert.Single(completion.Content).Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(model, completion.Model);
        Assert.Equal(42, completion.Usage.InputTokenCount);
        Assert.Equal(7, completion.Usage.OutputTokenCount);
        Assert.Equal(49, completion.Usage.TotalTokenCount);

        var upstream = Assert.Single(Provider.Requests);
        Matrix.AssertReachedProvider(upstream, model);
        var sent = upstream.Json!.Value;
        if (Matrix.KindOf(model) == ProviderType.Anthropic)
        {
            Assert.Equal("Answer in French.", Matrix.TextOf(sent.GetProperty("system")));
            Assert.Equal(AnthropicMaxTokensDefault, sent.GetProperty("max_tokens").GetInt32());
            var message = Assert.Single(sent.GetProperty("messages").EnumerateArray());
            Assert.Equal("user", message.GetProperty("role").GetString());
            Assert.Equal("Say hello", Matrix.TextOf(message.GetProperty("content")));
        }
        else
        {
            var messages = sent.GetProperty("messages");
            Assert.Equal(2, messages.GetArrayLength());
            Assert.Equal("system", messages[0].GetProperty("role").GetString());
            Assert.Equal("Answer in French.", messages[0].GetProperty("content").GetString());
            Assert.Equal("Say hello", messages[1].GetProperty("content").GetString());
            Assert.False(sent.TryGetProperty("max_tokens", out _), "no max_tokens is invented for an OpenAI-format provider");
        }
    }

    [Fact]
    public async Task Openai_sdk_max_output_tokens_becomes_anthropic_max_tokens()
    {
        Provider.RespondAnthropicText("ok", new AnthropicUsage(5, 1));

        await OpenAIChat("claude-sonnet-4-5").CompleteChatAsync([new UserChatMessage("x")], new ChatCompletionOptions { MaxOutputTokenCount = 321 });

        Assert.Equal(321, Provider.Requests[0].Json!.Value.GetProperty("max_tokens").GetInt32());
    }

    [Theory]
    [InlineData("claude-sonnet-4-5")]
    [InlineData("deepseek-chat")]
    public async Task Openai_sdk_streams_content_deltas_finish_reason_and_usage_from_the_provider(string model)
    {
        const string text = "one two three four five six seven eight";
        Matrix.RespondText(Provider, model, text, input: 120, output: 8);

        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in OpenAIChat(model).CompleteChatStreamingAsync([new UserChatMessage("Count")]))
        {
            pieces.AddRange(update.ContentUpdate.Select(part => part.Text));
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.True(pieces.Count(p => p.Length > 0) > 1, $"the reply should arrive as several deltas, got {pieces.Count}");
        Assert.Equal(text, string.Concat(pieces));
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.Equal(120, usage.InputTokenCount);
        Assert.Equal(8, usage.OutputTokenCount);
        var upstream = Assert.Single(Provider.Requests);
        Matrix.AssertReachedProvider(upstream, model);
        Assert.True(upstream.IsStreaming);
    }

    [Theory]
    [InlineData("claude-sonnet-4-5")]
    [InlineData("deepseek-chat")]
    public async Task Openai_sdk_reassembles_streamed_tool_call_arguments_from_the_provider(string model)
    {
        Matrix.RespondToolCall(Provider, model, Matrix.WeatherTool, Matrix.WeatherArguments);

        var call = await StreamToolCallAsync(model, [new UserChatMessage(Matrix.WeatherQuestion)]);

        Assert.Equal(Matrix.WeatherTool, call.FunctionName);
        Assert.False(string.IsNullOrEmpty(call.Id));
        Matrix.AssertSameJson(Matrix.WeatherArguments, call.FunctionArguments.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Openai_sdk_tool_round_trip_reaches_the_anthropic_provider_as_tool_use_and_tool_result_blocks(bool stream)
    {
        const string model = "claude-sonnet-4-5";
        ChatMessage system = new SystemChatMessage("You are a terse weather bot.");
        ChatMessage question = new UserChatMessage(Matrix.WeatherQuestion);
        Provider.RespondAnthropicToolUse(Matrix.WeatherTool, Matrix.WeatherArguments, new AnthropicUsage(80, 20));

        var call = await ToolTurnAsync(model, stream, [system, question]);

        Assert.Equal(Matrix.WeatherTool, call.FunctionName);
        Assert.StartsWith("toolu_", call.Id, StringComparison.Ordinal);
        Matrix.AssertSameJson(Matrix.WeatherArguments, call.FunctionArguments.ToString());
        var turn1 = Provider.Requests[0].Json!.Value;
        var tool = Assert.Single(turn1.GetProperty("tools").EnumerateArray());
        Assert.Equal(Matrix.WeatherTool, tool.GetProperty("name").GetString());
        Assert.Equal("string", tool.GetProperty("input_schema").GetProperty("properties").GetProperty("city").GetProperty("type").GetString());

        Provider.RespondAnthropicText("18°C and sunny in Paris.", new AnthropicUsage(120, 9));
        var answer = await TextTurnAsync(model, stream,
        [
            system,
            question,
            new AssistantChatMessage([call]),
            new ToolChatMessage(call.Id, Matrix.WeatherResult),
            new UserChatMessage("One sentence, please."),
        ]);

        Assert.Equal("18°C and sunny in Paris.", answer);
        var turn2 = Provider.Requests[1].Json!.Value;
        Assert.Equal("You are a terse weather bot.", Matrix.TextOf(turn2.GetProperty("system")));
        Assert.Equal(AnthropicMaxTokensDefault, turn2.GetProperty("max_tokens").GetInt32());
        Assert.Equal(stream, turn2.TryGetProperty("stream", out var s) && s.GetBoolean());
        var messages = turn2.GetProperty("messages");
        Assert.Equal(["user", "assistant", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(Matrix.WeatherQuestion, Matrix.TextOf(messages[0].GetProperty("content")));

        var toolUse = Assert.Single(messages[1].GetProperty("content").EnumerateArray());
        Assert.Equal("tool_use", toolUse.GetProperty("type").GetString());
        Assert.Equal(call.Id, toolUse.GetProperty("id").GetString());
        Assert.Equal(Matrix.WeatherTool, toolUse.GetProperty("name").GetString());
        Matrix.AssertSameJson(Matrix.WeatherArguments, toolUse.GetProperty("input").GetRawText());

        // The tool message and the user message after it are one Anthropic user turn: the result first, then the text.
        var merged = messages[2].GetProperty("content");
        Assert.Equal(2, merged.GetArrayLength());
        Assert.Equal("tool_result", merged[0].GetProperty("type").GetString());
        Assert.Equal(call.Id, merged[0].GetProperty("tool_use_id").GetString());
        Assert.Equal(Matrix.WeatherResult, Matrix.TextOf(merged[0].GetProperty("content")));
        Assert.Equal("text", merged[1].GetProperty("type").GetString());
        Assert.Equal("One sentence, please.", merged[1].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Openai_sdk_parallel_tool_results_become_one_anthropic_user_turn_of_tool_result_blocks()
    {
        Provider.RespondAnthropicText("Paris 18°C, Rome 22°C.", new AnthropicUsage(150, 12));
        var paris = ChatToolCall.CreateFunctionToolCall("call_paris", Matrix.WeatherTool, BinaryData.FromString("""{"city":"Paris"}"""));
        var rome = ChatToolCall.CreateFunctionToolCall("call_rome", Matrix.WeatherTool, BinaryData.FromString("""{"city":"Rome"}"""));

        ChatCompletion completion = await OpenAIChat("claude-sonnet-4-5").CompleteChatAsync(
        [
            new UserChatMessage("Weather in Paris and Rome?"),
            new AssistantChatMessage([paris, rome]),
            new ToolChatMessage("call_paris", "18°C"),
            new ToolChatMessage("call_rome", ChatMessageContentPart.CreateTextPart("22°C")),
        ], WeatherOptions());

        Assert.Equal("Paris 18°C, Rome 22°C.", completion.Content[0].Text);
        var messages = Provider.Requests[0].Json!.Value.GetProperty("messages");
        Assert.Equal(["user", "assistant", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        var calls = messages[1].GetProperty("content").EnumerateArray().ToList();
        Assert.Equal(["tool_use", "tool_use"], calls.Select(c => c.GetProperty("type").GetString()));
        Assert.Equal(["call_paris", "call_rome"], calls.Select(c => c.GetProperty("id").GetString()));
        Assert.Equal("Rome", calls[1].GetProperty("input").GetProperty("city").GetString());
        var results = messages[2].GetProperty("content").EnumerateArray().ToList();
        Assert.Equal(["tool_result", "tool_result"], results.Select(r => r.GetProperty("type").GetString()));
        Assert.Equal(["call_paris", "call_rome"], results.Select(r => r.GetProperty("tool_use_id").GetString()));
        Assert.Equal("18°C", Matrix.TextOf(results[0].GetProperty("content")));
        Assert.Equal("22°C", Matrix.TextOf(results[1].GetProperty("content")));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Openai_sdk_tool_round_trip_reaches_the_deepseek_provider_as_tool_calls_and_a_tool_message(bool stream)
    {
        const string model = "deepseek-chat";
        ChatMessage question = new UserChatMessage(Matrix.WeatherQuestion);
        Provider.RespondOpenAIToolCall(Matrix.WeatherTool, Matrix.WeatherArguments, new OpenAIUsage(80, 20));

        var call = await ToolTurnAsync(model, stream, [question]);

        Assert.Equal(Matrix.WeatherTool, call.FunctionName);
        Matrix.AssertSameJson(Matrix.WeatherArguments, call.FunctionArguments.ToString());
        var turn1Tool = Assert.Single(Provider.Requests[0].Json!.Value.GetProperty("tools").EnumerateArray());
        Assert.Equal(Matrix.WeatherTool, turn1Tool.GetProperty("function").GetProperty("name").GetString());

        Provider.RespondDeepSeekText("18°C and sunny in Paris.", new OpenAIUsage(120, 9));
        var answer = await TextTurnAsync(model, stream, [question, new AssistantChatMessage([call]), new ToolChatMessage(call.Id, Matrix.WeatherResult)]);

        Assert.Equal("18°C and sunny in Paris.", answer);
        Matrix.AssertOpenAIToolRoundTrip(Provider.Requests[1], call.Id, Matrix.WeatherQuestion);
    }

    // ───────────────────────────── text followed by parallel tool calls, both directions ─────────────────────────────

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Openai_sdk_gets_text_and_two_parallel_tool_calls_from_the_anthropic_provider(bool stream)
    {
        Provider.Respond(MixedAnswer.Anthropic);

        string text;
        List<(string Id, string Name, string Arguments)> calls;
        if (!stream)
        {
            ChatCompletion completion = await OpenAIChat("claude-sonnet-4-5").CompleteChatAsync([new UserChatMessage("Paris and Rome?")], WeatherOptions());
            Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
            text = string.Concat(completion.Content.Select(part => part.Text));
            calls = completion.ToolCalls.Select(c => (c.Id, c.FunctionName, c.FunctionArguments.ToString())).ToList();
        }
        else
        {
            var content = new StringBuilder();
            var byIndex = new SortedDictionary<int, (string? Id, string? Name, StringBuilder Arguments)>();
            ChatFinishReason? finish = null;
            await foreach (var update in OpenAIChat("claude-sonnet-4-5").CompleteChatStreamingAsync([new UserChatMessage("Paris and Rome?")], WeatherOptions()))
            {
                content.Append(string.Concat(update.ContentUpdate.Select(part => part.Text)));
                foreach (var part in update.ToolCallUpdates)
                {
                    var entry = byIndex.TryGetValue(part.Index, out var seen) ? seen : (null, null, new StringBuilder());
                    entry.Id ??= part.ToolCallId;
                    entry.Name ??= part.FunctionName;
                    if (part.FunctionArgumentsUpdate is { } piece) entry.Arguments.Append(piece.ToString());
                    byIndex[part.Index] = entry;
                }

                finish ??= update.FinishReason;
            }

            Assert.Equal(ChatFinishReason.ToolCalls, finish);
            Assert.Equal([0, 1], byIndex.Keys);
            text = content.ToString();
            calls = byIndex.Values.Select(v => (v.Id!, v.Name!, v.Arguments.ToString())).ToList();
        }

        Assert.Equal(MixedAnswer.Text, text);
        Assert.Equal([MixedAnswer.ParisId, MixedAnswer.RomeId], calls.Select(c => c.Id));
        Assert.All(calls, c => Assert.Equal(Matrix.WeatherTool, c.Name));
        Matrix.AssertSameJson("""{"city":"Paris"}""", calls[0].Arguments);
        Matrix.AssertSameJson("""{"city":"Rome"}""", calls[1].Arguments);
    }

    [Theory]
    [InlineData("gpt-4o", false)]
    [InlineData("gpt-4o", true)]
    [InlineData("deepseek-chat", false)]
    [InlineData("deepseek-chat", true)]
    public async Task Anthropic_sdk_gets_a_text_block_and_two_tool_use_blocks_from_an_openai_format_provider(string model, bool stream)
    {
        Provider.Respond(MixedAnswer.OpenAI);
        var request = Matrix.AnthropicParams(model, [new UserMessageParam("Paris and Rome?")], withTools: true);

        var message = stream
            ? await Matrix.AnthropicClient(Gateway).Messages.CreateStreaming(request).Aggregate()
            : await Matrix.AnthropicClient(Gateway).Messages.Create(request);

        Assert.Equal("tool_use", message.StopReason!.Raw());
        Assert.Equal(3, message.Content.Count);
        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal(MixedAnswer.Text, text.Text);
        Assert.True(message.Content[1].TryPickToolUse(out var paris));
        Assert.True(message.Content[2].TryPickToolUse(out var rome));
        Assert.Equal([MixedAnswer.ParisId, MixedAnswer.RomeId], [paris.ID, rome.ID]);
        Assert.Equal("Paris", paris.Input["city"].GetString());
        Assert.Equal("Rome", rome.Input["city"].GetString());
        Assert.Equal(50, message.Usage.InputTokens);
        Assert.Equal(40, message.Usage.OutputTokens);
    }

    /// <summary>"Checking both." then get_weather(Paris) and get_weather(Rome), in each wire format, whole or streamed.</summary>
    private static class MixedAnswer
    {
        public const string Text = "Checking both.";
        public const string ParisId = "toolu_01paris";
        public const string RomeId = "toolu_01rome";

        public static async Task Anthropic(RecordedRequest request, Microsoft.AspNetCore.Http.HttpContext context)
        {
            var usage = new JsonObject { ["input_tokens"] = 50, ["output_tokens"] = 40 };
            if (!request.IsStreaming)
            {
                await WriteJsonAsync(context, new JsonObject
                {
                    ["id"] = "msg_01mixed",
                    ["type"] = "message",
                    ["role"] = "assistant",
                    ["model"] = request.Model,
                    ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "text", ["text"] = Text },
                        ToolUse(ParisId, new JsonObject { ["city"] = "Paris" }),
                        ToolUse(RomeId, new JsonObject { ["city"] = "Rome" })),
                    ["stop_reason"] = "tool_use",
                    ["stop_sequence"] = null,
                    ["usage"] = usage,
                });
                return;
            }

            await FakeResponses.StartEventStreamAsync(context);
            async Task Send(string type, JsonObject data)
            {
                var payload = new JsonObject { ["type"] = type };
                foreach (var (key, value) in data.ToList())
                {
                    data.Remove(key);
                    payload[key] = value;
                }

                await FakeResponses.WriteEventAsync(context, new SseEvent(type, payload.ToJsonString()));
            }

            await Send("message_start", new JsonObject
            {
                ["message"] = new JsonObject
                {
                    ["id"] = "msg_01mixed",
                    ["type"] = "message",
                    ["role"] = "assistant",
                    ["model"] = request.Model,
                    ["content"] = new JsonArray(),
                    ["stop_reason"] = null,
                    ["stop_sequence"] = null,
                    ["usage"] = new JsonObject { ["input_tokens"] = 50, ["output_tokens"] = 1 },
                },
            });
            await Send("content_block_start", new JsonObject { ["index"] = 0, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } });
            foreach (var piece in new[] { "Checking ", "both." })
            {
                await Send("content_block_delta", new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = piece } });
            }

            await Send("content_block_stop", new JsonObject { ["index"] = 0 });
            var index = 1;
            foreach (var (id, pieces) in new[] { (ParisId, new[] { "", "{\"city\":", "\"Paris\"}" }), (RomeId, new[] { "", "{\"ci", "ty\":\"Rome\"}" }) })
            {
                await Send("content_block_start", new JsonObject { ["index"] = index, ["content_block"] = ToolUse(id, new JsonObject()) });
                foreach (var piece in pieces)
                {
                    await Send("content_block_delta", new JsonObject { ["index"] = index, ["delta"] = new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = piece } });
                }

                await Send("content_block_stop", new JsonObject { ["index"] = index });
                index++;
            }

            await Send("message_delta", new JsonObject
            {
                ["delta"] = new JsonObject { ["stop_reason"] = "tool_use", ["stop_sequence"] = null },
                ["usage"] = new JsonObject { ["output_tokens"] = 40 },
            });
            await Send("message_stop", new JsonObject());
        }

        public static async Task OpenAI(RecordedRequest request, Microsoft.AspNetCore.Http.HttpContext context)
        {
            var usage = new JsonObject { ["prompt_tokens"] = 50, ["completion_tokens"] = 40, ["total_tokens"] = 90 };
            if (!request.IsStreaming)
            {
                await WriteJsonAsync(context, new JsonObject
                {
                    ["id"] = "chatcmpl-mixed",
                    ["object"] = "chat.completion",
                    ["created"] = 1_700_000_000,
                    ["model"] = request.Model,
                    ["choices"] = new JsonArray(new JsonObject
                    {
                        ["index"] = 0,
                        ["message"] = new JsonObject
                        {
                            ["role"] = "assistant",
                            ["content"] = Text,
                            ["tool_calls"] = new JsonArray(
                                Call(ParisId, """{"city":"Paris"}"""),
                                Call(RomeId, """{"city":"Rome"}""")),
                        },
                        ["finish_reason"] = "tool_calls",
                    }),
                    ["usage"] = usage,
                });
                return;
            }

            await FakeResponses.StartEventStreamAsync(context);
            async Task Chunk(JsonObject? delta, string? finish = null, JsonObject? chunkUsage = null)
            {
                var chunk = new JsonObject
                {
                    ["id"] = "chatcmpl-mixed",
                    ["object"] = "chat.completion.chunk",
                    ["created"] = 1_700_000_000,
                    ["model"] = request.Model,
                    ["choices"] = delta is null ? new JsonArray() : new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
                    ["usage"] = chunkUsage,
                };
                await FakeResponses.WriteEventAsync(context, new SseEvent(null, chunk.ToJsonString()));
            }

            await Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" });
            await Chunk(new JsonObject { ["content"] = "Checking " });
            await Chunk(new JsonObject { ["content"] = "both." });
            await Chunk(ToolDelta(0, ParisId, Matrix.WeatherTool, ""));
            await Chunk(ToolDelta(0, null, null, "{\"city\":"));
            await Chunk(ToolDelta(0, null, null, "\"Paris\"}"));
            await Chunk(ToolDelta(1, RomeId, Matrix.WeatherTool, ""));
            await Chunk(ToolDelta(1, null, null, "{\"city\":\"Rome\"}"));
            await Chunk(new JsonObject(), "tool_calls");
            await Chunk(null, chunkUsage: usage);
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, "[DONE]"));
        }

        private static JsonObject ToolUse(string id, JsonObject input) =>
            new() { ["type"] = "tool_use", ["id"] = id, ["name"] = Matrix.WeatherTool, ["input"] = input };

        private static JsonObject Call(string id, string arguments) => new()
        {
            ["id"] = id,
            ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = Matrix.WeatherTool, ["arguments"] = arguments },
        };

        private static JsonObject ToolDelta(int index, string? id, string? name, string arguments)
        {
            var call = new JsonObject { ["index"] = index };
            if (id is not null)
            {
                call["id"] = id;
                call["type"] = "function";
            }

            var function = new JsonObject { ["arguments"] = arguments };
            if (name is not null) function["name"] = name;
            call["function"] = function;
            return new JsonObject { ["tool_calls"] = new JsonArray(call) };
        }

        private static async Task WriteJsonAsync(Microsoft.AspNetCore.Http.HttpContext context, JsonObject body)
        {
            var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = bytes.Length;
            await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
        }
    }

    // ───────────────────────────── usage and bill, every provider × client format ─────────────────────────────

    [Theory]
    [InlineData("claude-sonnet-4-5", "openai")]
    [InlineData("claude-sonnet-4-5", "anthropic")]
    [InlineData("gpt-4o", "openai")]
    [InlineData("gpt-4o", "anthropic")]
    [InlineData("deepseek-chat", "openai")]
    [InlineData("deepseek-chat", "anthropic")]
    public async Task Non_streaming_usage_and_cost_headers_match_the_hand_computed_bill(string model, string client)
    {
        var bill = Bill.For(model);
        bill.Respond(Provider);

        var headers = client == "openai" ? await OpenAIBillAsync(model, bill) : await AnthropicBillAsync(model, bill);

        Assert.Equal(bill.CostUsd, Usd(headers, "x-tokenrouter-cost-usd"));
        Assert.Equal(bill.SavingsUsd, Usd(headers, "x-tokenrouter-cache-savings-usd"));
        Assert.Equal(bill.CacheRead.ToString(CultureInfo.InvariantCulture), headers["x-tokenrouter-cached-tokens"]);
        var record = await Matrix.SingleUsageRecordAsync(Gateway);
        Assert.Equal(bill.Usage, record.Usage);
        Assert.Equal(bill.CostUsd, record.CostUsd);
        Assert.Equal(bill.SavingsUsd, record.CacheSavingsUsd);
        Assert.False(record.Stream);
    }

    [Theory]
    [InlineData("claude-sonnet-4-5", "openai")]
    [InlineData("claude-sonnet-4-5", "anthropic")]
    [InlineData("gpt-4o", "openai")]
    [InlineData("gpt-4o", "anthropic")]
    [InlineData("deepseek-chat", "openai")]
    [InlineData("deepseek-chat", "anthropic")]
    public async Task Streamed_usage_reaches_the_client_and_the_usage_record_carries_the_hand_computed_bill(string model, string client)
    {
        var bill = Bill.For(model);
        bill.Respond(Provider);

        if (client == "openai")
        {
            ChatTokenUsage? usage = null;
            await foreach (var update in OpenAIChat(model).CompleteChatStreamingAsync([new UserChatMessage("bill me")]))
            {
                usage ??= update.Usage;
            }

            Assert.NotNull(usage);
            Assert.Equal(bill.AllInput, usage.InputTokenCount);
            Assert.Equal(bill.CacheRead, usage.InputTokenDetails.CachedTokenCount);
            Assert.Equal(bill.Output, usage.OutputTokenCount);
        }
        else
        {
            MessageDeltaUsage? usage = null;
            await foreach (var e in Matrix.AnthropicClient(Gateway).Messages.CreateStreaming(Matrix.AnthropicParams(model, [new UserMessageParam("bill me")])))
            {
                if (e.TryPickDelta(out var delta)) usage = delta.Usage;
            }

            Assert.NotNull(usage);
            Assert.Equal(bill.Uncached, usage.InputTokens);
            Assert.Equal(bill.CacheRead, usage.CacheReadInputTokens);
            Assert.Equal(bill.CacheWrite5m + bill.CacheWrite1h, usage.CacheCreationInputTokens);
            Assert.Equal(bill.Output, usage.OutputTokens);
        }

        var record = await Matrix.SingleUsageRecordAsync(Gateway);
        Assert.True(record.Stream);
        Assert.Equal(200, record.Status);
        Assert.Equal(model, record.Model);
        Assert.Equal(Matrix.ProviderName(model), record.Provider);
        Assert.Equal(bill.Usage, record.Usage);
        Assert.Equal(bill.CostUsd, record.CostUsd);
        Assert.Equal(bill.SavingsUsd, record.CacheSavingsUsd);
    }

    private async Task<Dictionary<string, string>> OpenAIBillAsync(string model, Bill bill)
    {
        ClientResult<ChatCompletion> result = await OpenAIChat(model).CompleteChatAsync([new UserChatMessage("bill me")]);
        ChatCompletion completion = result;

        Assert.Equal(bill.AllInput, completion.Usage.InputTokenCount);
        Assert.Equal(bill.CacheRead, completion.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(bill.Output, completion.Usage.OutputTokenCount);
        Assert.Equal(bill.AllInput + bill.Output, completion.Usage.TotalTokenCount);

        var raw = result.GetRawResponse();
        return TokenRouterHeaders(name => raw.Headers.TryGetValue(name, out var value) ? value : null);
    }

    private async Task<Dictionary<string, string>> AnthropicBillAsync(string model, Bill bill)
    {
        using var response = await Matrix.AnthropicClient(Gateway).WithRawResponse.Messages.Create(Matrix.AnthropicParams(model, [new UserMessageParam("bill me")]));
        var message = await response.Deserialize();

        Assert.Equal(bill.Uncached, message.Usage.InputTokens);
        Assert.Equal(bill.CacheRead, message.Usage.CacheReadInputTokens);
        Assert.Equal(bill.CacheWrite5m + bill.CacheWrite1h, message.Usage.CacheCreationInputTokens);
        Assert.Equal(bill.CacheWrite5m, message.Usage.CacheCreation?.Ephemeral5mInputTokens ?? 0);
        Assert.Equal(bill.CacheWrite1h, message.Usage.CacheCreation?.Ephemeral1hInputTokens ?? 0);
        Assert.Equal(bill.Output, message.Usage.OutputTokens);

        return TokenRouterHeaders(name => response.TryGetHeaderValues(name, out var values) ? string.Join(",", values) : null);
    }

    private static Dictionary<string, string> TokenRouterHeaders(Func<string, string?> read)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in new[] { "x-tokenrouter-cost-usd", "x-tokenrouter-cache-savings-usd", "x-tokenrouter-cached-tokens" })
        {
            headers[name] = read(name) ?? throw new Xunit.Sdk.XunitException($"the response has no {name} header");
        }

        return headers;
    }

    private static decimal Usd(Dictionary<string, string> headers, string name) =>
        decimal.Parse(headers[name], NumberStyles.Number, CultureInfo.InvariantCulture);

    // ───────────────────────────── helpers ─────────────────────────────

    private const int AnthropicMaxTokensDefault = 4096;

    private ChatClient OpenAIChat(string model) =>
        new(model, new ApiKeyCredential(GatewayFactory.ClientKey),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    private static ChatCompletionOptions WeatherOptions() => new() { Tools = { Matrix.OpenAIWeatherTool() } };

    /// <summary>Turn 1: the model asks for the weather tool; returns the call as the SDK surfaces it (reassembled when streamed).</summary>
    private async Task<ChatToolCall> ToolTurnAsync(string model, bool stream, IEnumerable<ChatMessage> messages)
    {
        if (stream) return await StreamToolCallAsync(model, messages);

        ChatCompletion completion = await OpenAIChat(model).CompleteChatAsync(messages, WeatherOptions());
        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        return Assert.Single(completion.ToolCalls);
    }

    private async Task<ChatToolCall> StreamToolCallAsync(string model, IEnumerable<ChatMessage> messages)
    {
        string? id = null, name = null;
        var arguments = new StringBuilder();
        var argumentPieces = 0;
        ChatFinishReason? finish = null;
        await foreach (var update in OpenAIChat(model).CompleteChatStreamingAsync(messages, WeatherOptions()))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                Assert.Equal(0, part.Index);
                id ??= part.ToolCallId;
                name ??= part.FunctionName;
                if (part.FunctionArgumentsUpdate is { } piece && piece.ToMemory().Length > 0)
                {
                    argumentPieces++;
                    arguments.Append(piece.ToString());
                }
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.True(argumentPieces > 1, $"the arguments should arrive in several pieces, got {argumentPieces}");
        Assert.NotNull(id);
        Assert.NotNull(name);
        return ChatToolCall.CreateFunctionToolCall(id, name, BinaryData.FromString(arguments.ToString()));
    }

    /// <summary>Turn 2: the final text answer, read whole or from the stream.</summary>
    private async Task<string> TextTurnAsync(string model, bool stream, IEnumerable<ChatMessage> messages)
    {
        if (!stream)
        {
            ChatCompletion completion = await OpenAIChat(model).CompleteChatAsync(messages, WeatherOptions());
            Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
            return completion.Content[0].Text;
        }

        var text = new StringBuilder();
        await foreach (var update in OpenAIChat(model).CompleteChatStreamingAsync(messages, WeatherOptions()))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(part => part.Text)));
        }

        return text.ToString();
    }
}

/// <summary>
/// Each provider reports cached, uncached and (Anthropic only) cache-write input. The bill is written out by hand
/// from the list prices per 1M tokens: cost = uncached×in + reads×read + writes×write + out×output;
/// savings = (all input × in + out × output) − cost.
/// </summary>
internal sealed record Bill(
    string Model, Action<FakeProvider> Respond,
    int Uncached, int CacheRead, int CacheWrite5m, int CacheWrite1h, int Output,
    decimal CostUsd, decimal FullPriceUsd)
{
    public int AllInput => Uncached + CacheRead + CacheWrite5m + CacheWrite1h;
    public decimal SavingsUsd => FullPriceUsd - CostUsd;
    public TokenUsage Usage => new(AllInput, CacheRead, CacheWrite5m, CacheWrite1h, Output);

    public static Bill For(string model) => model switch
    {
        // claude-sonnet-4-5: in 3.00, cache read 0.30, write 5m 3.75, write 1h 6.00, out 15.00.
        // Anthropic's input_tokens is the uncached rest: 1,200 + 5,000 read + 800 (5m) + 400 (1h) = 7,400 input.
        "claude-sonnet-4-5" => new Bill(model,
            p => p.RespondAnthropicText("billed", new AnthropicUsage(Input: 1200, Output: 300, CacheRead: 5000, CacheWrite5m: 800, CacheWrite1h: 400)),
            Uncached: 1200, CacheRead: 5000, CacheWrite5m: 800, CacheWrite1h: 400, Output: 300,
            CostUsd: (1200 * 3.00m + 5000 * 0.30m + 800 * 3.75m + 400 * 6.00m + 300 * 15.00m) / 1_000_000m, // $0.015
            FullPriceUsd: (7400 * 3.00m + 300 * 15.00m) / 1_000_000m), // $0.0267
        // gpt-4o: in 2.50, cached 1.25, out 10.00. prompt_tokens 6,000 include 4,096 cached_tokens.
        "gpt-4o" => new Bill(model,
            p => p.RespondOpenAIText("billed", new OpenAIUsage(Prompt: 6000, Completion: 250, Cached: 4096)),
            Uncached: 1904, CacheRead: 4096, CacheWrite5m: 0, CacheWrite1h: 0, Output: 250,
            CostUsd: (1904 * 2.50m + 4096 * 1.25m + 250 * 10.00m) / 1_000_000m, // $0.01238
            FullPriceUsd: (6000 * 2.50m + 250 * 10.00m) / 1_000_000m), // $0.0175
        // deepseek-chat: in 0.28, cache hit 0.028, out 0.42. prompt_cache_hit_tokens 2,048 + miss 952 = 3,000.
        "deepseek-chat" => new Bill(model,
            p => p.RespondDeepSeekText("billed", new OpenAIUsage(Prompt: 3000, Completion: 500, Cached: 2048)),
            Uncached: 952, CacheRead: 2048, CacheWrite5m: 0, CacheWrite1h: 0, Output: 500,
            CostUsd: (952 * 0.28m + 2048 * 0.028m + 500 * 0.42m) / 1_000_000m, // $0.000533904
            FullPriceUsd: (3000 * 0.28m + 500 * 0.42m) / 1_000_000m), // $0.00105
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, null),
    };
}

/// <summary>The provider behind a gateway model name.</summary>
internal enum ProviderType
{
    OpenAI,
    DeepSeek,
    Anthropic,
}

/// <summary>Shared pieces of the provider-matrix tests: responders by model, the weather tool, wire assertions.</summary>
internal static class Matrix
{
    public const string WeatherTool = "get_weather";
    public const string WeatherQuestion = "What is the weather in Paris?";
    public const string WeatherArguments = """{"city":"Paris","days":[1,2],"unit":"celsius"}""";
    public const string WeatherResult = "18°C and sunny";

    public static ProviderType KindOf(string model) => model switch
    {
        "gpt-4o" => ProviderType.OpenAI,
        "deepseek-chat" => ProviderType.DeepSeek,
        "claude-sonnet-4-5" => ProviderType.Anthropic,
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, null),
    };

    public static string ProviderName(string model) => KindOf(model) switch
    {
        ProviderType.OpenAI => "openai",
        ProviderType.DeepSeek => "deepseek",
        _ => "anthropic",
    };

    /// <summary>A text answer in the wire format of the provider <paramref name="model"/> routes to.</summary>
    public static void RespondText(FakeProvider provider, string model, string text, int input, int output)
    {
        switch (KindOf(model))
        {
            case ProviderType.OpenAI:
                provider.RespondOpenAIText(text, new OpenAIUsage(input, output));
                break;
            case ProviderType.DeepSeek:
                provider.RespondDeepSeekText(text, new OpenAIUsage(input, output));
                break;
            default:
                provider.RespondAnthropicText(text, new AnthropicUsage(input, output));
                break;
        }
    }

    /// <summary>A tool call in the wire format of the provider <paramref name="model"/> routes to (DeepSeek speaks OpenAI's).</summary>
    public static void RespondToolCall(FakeProvider provider, string model, string name, string argumentsJson)
    {
        if (KindOf(model) == ProviderType.Anthropic) provider.RespondAnthropicToolUse(name, argumentsJson, new AnthropicUsage(80, 20));
        else provider.RespondOpenAIToolCall(name, argumentsJson, new OpenAIUsage(80, 20));
    }

    /// <summary>The request went to the provider's own endpoint with the provider's key, never the client's.</summary>
    public static void AssertReachedProvider(RecordedRequest request, string model)
    {
        Assert.Equal("POST", request.Method);
        Assert.Equal(model, request.Model);
        switch (KindOf(model))
        {
            case ProviderType.OpenAI:
                Assert.Equal("/v1/chat/completions", request.Path);
                Assert.Equal("Bearer sk-upstream-openai", request.Header("Authorization"));
                break;
            case ProviderType.DeepSeek:
                Assert.Equal("/chat/completions", request.Path);
                Assert.Equal("Bearer sk-upstream-deepseek", request.Header("Authorization"));
                break;
            default:
                Assert.Equal("/v1/messages", request.Path);
                Assert.Equal("sk-upstream-anthropic", request.Header("x-api-key"));
                Assert.Null(request.Header("Authorization"));
                Assert.False(string.IsNullOrEmpty(request.Header("anthropic-version")));
                break;
        }

        Assert.DoesNotContain(GatewayFactory.ClientKey, string.Join("\n", request.Headers.Values));
    }

    /// <summary>
    /// An OpenAI-format provider's view of a tool round trip: the question, the assistant's <c>tool_calls</c> (same id,
    /// name and arguments) and a <c>role:tool</c> message answering that id.
    /// </summary>
    public static void AssertOpenAIToolRoundTrip(RecordedRequest request, string callId, string question)
    {
        var messages = request.Json!.Value.GetProperty("messages");
        Assert.Equal(["user", "assistant", "tool"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(question, messages[0].GetProperty("content").GetString());

        var assistant = messages[1];
        Assert.True(!assistant.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null
                    || (content.ValueKind == JsonValueKind.String && content.GetString() == ""),
            $"the assistant turn has no text, got {assistant}");
        var call = Assert.Single(assistant.GetProperty("tool_calls").EnumerateArray());
        Assert.Equal(callId, call.GetProperty("id").GetString());
        Assert.Equal("function", call.GetProperty("type").GetString());
        Assert.Equal(WeatherTool, call.GetProperty("function").GetProperty("name").GetString());
        AssertSameJson(WeatherArguments, call.GetProperty("function").GetProperty("arguments").GetString()!);

        var tool = messages[2];
        Assert.Equal(callId, tool.GetProperty("tool_call_id").GetString());
        Assert.Equal(WeatherResult, tool.GetProperty("content").GetString());
        Assert.Equal(WeatherTool, Assert.Single(request.Json!.Value.GetProperty("tools").EnumerateArray()).GetProperty("function").GetProperty("name").GetString());
    }

    /// <summary>The same JSON value, whatever the key order and whitespace.</summary>
    public static void AssertSameJson(string expected, string actual) =>
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(actual)), $"expected JSON {expected}, got {actual}");

    /// <summary>The text of an Anthropic <c>system</c> / <c>content</c> value: a string, or the text blocks of an array.</summary>
    public static string TextOf(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString()!,
        JsonValueKind.Array => string.Concat(value.EnumerateArray()
            .Where(block => block.GetProperty("type").GetString() == "text")
            .Select(block => block.GetProperty("text").GetString())),
        _ => throw new Xunit.Sdk.XunitException($"expected a string or blocks, got {value}"),
    };

    public static ChatTool OpenAIWeatherTool() =>
        ChatTool.CreateFunctionTool(WeatherTool, "Current weather for a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string"},"days":{"type":"array","items":{"type":"integer"}}},"required":["city"]}"""));

    public static AnthropicClient AnthropicClient(GatewayFactory gateway, string key = GatewayFactory.ClientKey) =>
        new() { ApiKey = key, BaseUrl = gateway.BaseAddress.ToString().TrimEnd('/'), MaxRetries = 0 };

    public static MessageCreateParams AnthropicParams(string model, IReadOnlyList<MessageParam> messages, bool withTools = false) => withTools
        ? new() { Model = model, MaxTokens = 256, Messages = messages, Tools = [AnthropicWeatherTool()] }
        : new() { Model = model, MaxTokens = 256, Messages = messages };

    public static Tool AnthropicWeatherTool() => new()
    {
        Name = WeatherTool,
        Description = "Current weather for a city",
        InputSchema = new InputSchema
        {
            Properties = new Dictionary<string, JsonElement>
            {
                ["city"] = JsonSerializer.SerializeToElement(new { type = "string" }),
                ["unit"] = JsonSerializer.SerializeToElement(new { type = "string" }),
                ["days"] = JsonSerializer.SerializeToElement(new { type = "array", items = new { type = "integer" } }),
            },
            Required = ["city"],
        },
    };

    /// <summary>The gateway's one usage record; the upstream pump writes it as the exchange ends, possibly just after the client finished reading.</summary>
    public static async Task<UsageRecord> SingleUsageRecordAsync(GatewayFactory gateway)
    {
        var sink = gateway.Service<InMemoryUsageSink>();
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (sink.Snapshot().Count == 0)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), patience.Token);
        }

        return Assert.Single(sink.Snapshot());
    }

    public static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
