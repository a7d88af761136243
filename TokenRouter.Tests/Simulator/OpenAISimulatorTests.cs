using System.ClientModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace TokenRouter.Tests.Simulator;

/// <summary>
/// Hand-computed numbers use the simulator's rendering: a lone user message of N ASCII bytes renders as
/// <c>&lt;|im_start|&gt;user\n</c> (17) + N + <c>&lt;|im_end|&gt;\n</c> (11) + <c>&lt;|im_start|&gt;assistant\n</c> (22)
/// = N + 50 bytes, and tokens = ceil(bytes / 4); cache units are 512 bytes (128 tokens).
/// </summary>
public sealed class OpenAISimulatorTests
{
    private const string Path = "/sim/openai/v1/chat/completions";

    private static JsonObject UserRequest(string content, string model = "sim-openai") => new()
    {
        ["model"] = model,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
    };

    [Fact]
    public async Task SecondIdenticalLongRequestReadsTheCachedPrefixIn128TokenIncrements()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(5950)); // 6000 bytes = 1500 tokens, 11 whole 512-byte units

        var (status1, first) = await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);

        Assert.Equal(200, status1);
        Assert.Equal(1500, first.Int("usage.prompt_tokens"));
        Assert.Equal(0, first.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(1500, second.Int("usage.prompt_tokens"));
        Assert.Equal(1408, second.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(0, second.Int("usage.prompt_tokens_details.cached_tokens") % 128);
        Assert.Equal(second.Int("usage.prompt_tokens") + second.Int("usage.completion_tokens"), second.Int("usage.total_tokens"));
    }

    [Fact]
    public async Task PromptOfExactly1024TokensIsCachedWholeOnRepeat()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(4046)); // 4096 bytes = 1024 tokens

        await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);

        Assert.Equal(1024, second.Int("usage.prompt_tokens"));
        Assert.Equal(1024, second.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task PromptShorterThan1024TokensNeverCaches()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(3950)); // 4000 bytes = 1000 tokens

        var (_, first) = await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);

        Assert.Equal(1000, second.Int("usage.prompt_tokens"));
        Assert.Equal(0, first.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(0, second.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task ConversationThatExtendsAnEarlierPromptReadsTheSharedPrefix()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(5000);
        var turn1 = Json.Parse($$"""
            {"model":"sim-openai","messages":[{"role":"system","content":"{{system}}"},{"role":"user","content":"Hi"}]}
            """);
        var turn2 = Json.Parse($$"""
            {"model":"sim-openai","messages":[{"role":"system","content":"{{system}}"},{"role":"user","content":"Hi"},
             {"role":"assistant","content":"Hello"},{"role":"user","content":"{{Json.Filler(3000, "more")}}"}]}
            """);

        await sim.PostAsync(Path, turn1);
        var (_, second) = await sim.PostAsync(Path, turn2);

        // turn1 renders to 5019 + 11 + 30 + 22 = 5082 bytes: 9 whole units of turn2's prefix were written.
        Assert.Equal(9 * 128, second.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    private static JsonObject Tool(string name, string description, string parametersJson) => new()
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = name,
            ["description"] = description,
            ["parameters"] = JsonNode.Parse(parametersJson),
        },
    };

    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city","unit"]}""";
    private const string WeatherSchemaKeysReordered = """{"properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"type":"object","required":["city","unit"]}""";
    private const string FlightSchema = """{"type":"object","properties":{"origin":{"type":"string"},"date":{"type":"string","format":"date"},"seats":{"type":"integer","minimum":1}},"required":["origin","date","seats"]}""";

    private static JsonObject ToolRequest(JsonArray tools, string system, string user) => new()
    {
        ["model"] = "sim-openai",
        ["tools"] = tools,
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = system },
            new JsonObject { ["role"] = "user", ["content"] = user }),
    };

    [Fact]
    public async Task ReorderingToolsBreaksTheCacheHit()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var weather = Tool("get_weather", Json.Filler(2000, "weather"), WeatherSchema);
        var flight = Tool("book_flight", Json.Filler(2000, "flight"), FlightSchema);
        var system = Json.Filler(2000, "system");

        await sim.PostAsync(Path, ToolRequest([weather.DeepClone(), flight.DeepClone()], system, "Paris?"));
        var (_, same) = await sim.PostAsync(Path, ToolRequest([weather.DeepClone(), flight.DeepClone()], system, "Paris?"));
        var (_, reordered) = await sim.PostAsync(Path, ToolRequest([flight.DeepClone(), weather.DeepClone()], system, "Paris?"));

        Assert.True(same.Int("usage.prompt_tokens_details.cached_tokens") >= 1024);
        Assert.Equal(same.Int("usage.prompt_tokens"), reordered.Int("usage.prompt_tokens"));
        Assert.Equal(0, reordered.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task ChangingKeyOrderInsideAToolSchemaBreaksTheCacheHit()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(4000, "system");

        await sim.PostAsync(Path, ToolRequest([Tool("get_weather", "Weather.", WeatherSchema)], system, "Paris?"));
        var (_, reordered) = await sim.PostAsync(Path, ToolRequest([Tool("get_weather", "Weather.", WeatherSchemaKeysReordered)], system, "Paris?"));

        Assert.Equal(0, reordered.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task RequestWhitespaceTopLevelFieldOrderAndEscapeSpellingDoNotAffectTheCache()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(5000, "caf\u00e9");
        var compact = """{"model":"sim-openai","tools":[{"type":"function","function":{"name":"get_weather","description":"Weather.","parameters":"""
            + WeatherSchema + """}}],"messages":[{"role":"system","content":""" + "\"" + system + "\"" + """},{"role":"user","content":"Paris?"}]}""";
        var reformatted = $$"""
            {
              "messages" : [ { "content" : "{{system.Replace("\u00e9", "\\u00e9", StringComparison.Ordinal)}}", "role" : "system" },
                             { "role" : "user", "content" : "Paris?" } ],
              "tools" : [ { "function" : { "parameters" : {
                    "type" : "object",
                    "properties" : { "city" : { "type" : "string" }, "unit" : { "type" : "string", "enum" : [ "c", "f" ] } },
                    "required" : [ "city", "unit" ] },
                  "name" : "get_weather", "description" : "Weather." }, "type" : "function" } ],
              "model" : "sim-openai"
            }
            """;

        await sim.PostAsync(Path, compact);
        var (_, again) = await sim.PostAsync(Path, compact);
        var (_, variant) = await sim.PostAsync(Path, reformatted);

        Assert.True(again.Int("usage.prompt_tokens_details.cached_tokens") > 1024);
        Assert.Equal(again.Int("usage.prompt_tokens"), variant.Int("usage.prompt_tokens"));
        Assert.Equal(again.Int("usage.prompt_tokens_details.cached_tokens"), variant.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    internal static JsonObject ToolHistoryRequest(string model, string system, string arguments, string toolResult) => new()
    {
        ["model"] = model,
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = system },
            new JsonObject { ["role"] = "user", ["content"] = "Weather?" },
            new JsonObject
            {
                ["role"] = "assistant",
                ["content"] = null,
                ["tool_calls"] = new JsonArray(new JsonObject
                {
                    ["id"] = "call_1",
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = "get_weather", ["arguments"] = arguments },
                }),
            },
            new JsonObject { ["role"] = "tool", ["tool_call_id"] = "call_1", ["content"] = toolResult },
            new JsonObject { ["role"] = "user", ["content"] = "Thanks" }),
    };

    [Fact]
    public async Task SpacingInsideToolCallArgumentsLimitsTheHitToThePrefixBeforeTheArguments()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(5000);
        var toolResult = Json.Filler(2000, "sunny");

        await sim.PostAsync(Path, ToolHistoryRequest("sim-openai", system, """{"city":"Paris"}""", toolResult));
        var (_, same) = await sim.PostAsync(Path, ToolHistoryRequest("sim-openai", system, """{"city":"Paris"}""", toolResult));
        var (_, spaced) = await sim.PostAsync(Path, ToolHistoryRequest("sim-openai", system, """{"city": "Paris"}""", toolResult));

        // The arguments start at byte 5120 and differ at byte 5128: units 1–10 (1280 tokens) still match.
        Assert.Equal(1814, same.Int("usage.prompt_tokens")); // 7255 bytes
        Assert.Equal(14 * 128, same.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(10 * 128, spaced.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task CacheEntriesExpireAfterTheTtlSinceLastUse()
    {
        var clock = new ManualTimeProvider();
        await using var sim = await SimulatorHost.StartAsync(configureServices: s => s.AddSingleton<TimeProvider>(clock));
        var request = UserRequest(Json.Filler(5950));

        await sim.PostAsync(Path, request);
        clock.Advance(TimeSpan.FromMinutes(4));
        var (_, refreshed) = await sim.PostAsync(Path, request);
        clock.Advance(TimeSpan.FromMinutes(4));
        var (_, stillWarm) = await sim.PostAsync(Path, request);
        clock.Advance(TimeSpan.FromMinutes(6));
        var (_, expired) = await sim.PostAsync(Path, request);

        Assert.Equal(1408, refreshed.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(1408, stillWarm.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(0, expired.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task CacheIsPartitionedByModelButNotByPromptCacheKey()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var content = Json.Filler(5950);

        await sim.PostAsync(Path, UserRequest(content));
        var keyed = UserRequest(content);
        keyed["prompt_cache_key"] = "tenant-1";
        var (_, withKey) = await sim.PostAsync(Path, keyed);
        var (_, otherModel) = await sim.PostAsync(Path, UserRequest(content, "sim-openai-mini"));

        Assert.Equal(1408, withKey.Int("usage.prompt_tokens_details.cached_tokens"));
        Assert.Equal(0, otherModel.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task OfferedToolsAndAUserTurnProduceAToolCallWithSchemaArguments()
    {
        await using var sim = await SimulatorHost.StartAsync();
        JsonArray tools = [Tool("get_weather", "Weather.", WeatherSchema), Tool("book_flight", "Flights.", FlightSchema)];
        JsonArray reversed = [tools[1]!.DeepClone(), tools[0]!.DeepClone()];

        var (status, body) = await sim.PostAsync(Path, ToolRequest(tools, "You help.", "Plan my trip"));
        var (_, fromReversed) = await sim.PostAsync(Path, ToolRequest(reversed, "You help.", "Plan my trip"));

        Assert.Equal(200, status);
        Assert.Equal("tool_calls", body.Str("choices.0.finish_reason"));
        Assert.Null(body["choices"]![0]!["message"]!["content"]);
        var call = body["choices"]![0]!["message"]!["tool_calls"]![0]!;
        Assert.StartsWith("call_", call.Str("id"), StringComparison.Ordinal);
        Assert.Equal("function", call.Str("type"));
        var name = call.Str("function.name");
        Assert.Equal(name, fromReversed.Str("choices.0.message.tool_calls.0.function.name"));
        using var arguments = JsonDocument.Parse(call.Str("function.arguments")!);
        if (name == "get_weather")
        {
            Assert.Equal("c", arguments.RootElement.GetProperty("unit").GetString());
            Assert.Equal(JsonValueKind.String, arguments.RootElement.GetProperty("city").ValueKind);
        }
        else
        {
            Assert.Equal("2025-01-01", arguments.RootElement.GetProperty("date").GetString());
            Assert.Equal(1, arguments.RootElement.GetProperty("seats").GetInt32());
            Assert.Equal(JsonValueKind.String, arguments.RootElement.GetProperty("origin").ValueKind);
        }
    }

    [Fact]
    public async Task ToolResultAsLastMessageProducesATextReply()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = ToolHistoryRequest("sim-openai", "You help.", """{"city":"Paris"}""", "sunny");
        request["messages"]!.AsArray().RemoveAt(4);
        request["tools"] = new JsonArray(Tool("get_weather", "Weather.", WeatherSchema));

        var (_, body) = await sim.PostAsync(Path, request);

        Assert.Equal("stop", body.Str("choices.0.finish_reason"));
        Assert.StartsWith("Simulated reply", body.Str("choices.0.message.content"), StringComparison.Ordinal);
        Assert.Null(body["choices"]![0]!["message"]!["tool_calls"]);
    }

    [Fact]
    public async Task ToolChoiceNoneAndForcedFunctionAreHonoured()
    {
        await using var sim = await SimulatorHost.StartAsync();
        JsonArray tools = [Tool("get_weather", "Weather.", WeatherSchema), Tool("book_flight", "Flights.", FlightSchema)];
        var none = ToolRequest(tools, "You help.", "Plan my trip");
        none["tool_choice"] = "none";
        var forced = ToolRequest((JsonArray)tools.DeepClone(), "You help.", "Plan my trip");
        forced["tool_choice"] = Json.Parse("""{"type":"function","function":{"name":"book_flight"}}""");

        var (_, textReply) = await sim.PostAsync(Path, none);
        var (_, forcedReply) = await sim.PostAsync(Path, forced);

        Assert.Equal("stop", textReply.Str("choices.0.finish_reason"));
        Assert.Equal("book_flight", forcedReply.Str("choices.0.message.tool_calls.0.function.name"));
    }

    [Fact]
    public async Task IdenticalRequestsGetIdenticalRepliesAndDifferentUserTextADifferentOne()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (_, a) = await sim.PostAsync(Path, UserRequest("Tell me about caches"));
        var (_, b) = await sim.PostAsync(Path, UserRequest("Tell me about caches"));
        var (_, c) = await sim.PostAsync(Path, UserRequest("Tell me about queues"));

        Assert.Equal(a.Str("choices.0.message.content"), b.Str("choices.0.message.content"));
        Assert.NotEqual(a.Str("choices.0.message.content"), c.Str("choices.0.message.content"));
        Assert.Contains("Tell me about caches", a.Str("choices.0.message.content"), StringComparison.Ordinal);
        Assert.NotEqual(a.Str("id"), b.Str("id"));
    }

    [Fact]
    public async Task MaxCompletionTokensTruncatesWithFinishReasonLength()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest("Tell me about caches");
        request["max_completion_tokens"] = 3;

        var (_, body) = await sim.PostAsync(Path, request);

        Assert.Equal("length", body.Str("choices.0.finish_reason"));
        Assert.Equal(3, body.Int("usage.completion_tokens"));
        Assert.Equal(12, body.Str("choices.0.message.content")!.Length);
    }

    [Fact]
    public async Task StreamWithIncludeUsageEndsWithAUsageChunkEqualToTheNonStreamingUsage()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(5950));
        await sim.PostAsync(Path, request);
        var (_, plain) = await sim.PostAsync(Path, request);
        await sim.ResetAsync();
        await sim.PostAsync(Path, request);

        request["stream"] = true;
        request["stream_options"] = new JsonObject { ["include_usage"] = true };
        var events = await sim.StreamAsync(Path, request);

        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e.Data)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.Str("object")));
        Assert.Single(chunks.Select(c => c.Str("id")).Distinct());
        Assert.Equal("assistant", chunks[0].Str("choices.0.delta.role"));
        var contentChunks = chunks.Where(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["delta"]!["content"] is not null).ToList();
        Assert.True(contentChunks.Count >= 3);
        Assert.Equal(plain.Str("choices.0.message.content"), string.Concat(contentChunks.Select(c => c.Str("choices.0.delta.content"))));
        var finish = chunks[^2];
        Assert.Equal("stop", finish.Str("choices.0.finish_reason"));
        Assert.Null(finish["usage"]);
        Assert.True(finish.AsObject().ContainsKey("usage"));
        var usageChunk = chunks[^1];
        Assert.Empty(usageChunk["choices"]!.AsArray());
        Assert.True(JsonNode.DeepEquals(plain["usage"], usageChunk["usage"]));
        Assert.Equal(1408, usageChunk.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task StreamWithoutIncludeUsageHasNoUsageChunk()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest("Tell me about caches");
        request["stream"] = true;

        var events = await sim.StreamAsync(Path, request);

        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e.Data)!.AsObject()).ToList();
        Assert.All(chunks, c => Assert.False(c.ContainsKey("usage")));
        Assert.All(chunks, c => Assert.Single(c["choices"]!.AsArray()));
        Assert.Equal("stop", chunks[^1].Str("choices.0.finish_reason"));
    }

    [Fact]
    public async Task StreamedToolCallSendsIdAndNameThenArgumentsInPieces()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = ToolRequest([Tool("book_flight", "Flights.", FlightSchema)], "You help.", "Fly me");
        var (_, plain) = await sim.PostAsync(Path, request.DeepClone());
        request["stream"] = true;

        var events = await sim.StreamAsync(Path, request);

        var deltas = events.SkipLast(1).Select(e => JsonNode.Parse(e.Data)!)
            .Where(c => c["choices"]![0]!["delta"]!["tool_calls"] is not null)
            .Select(c => c["choices"]![0]!["delta"]!["tool_calls"]![0]!).ToList();
        Assert.True(deltas.Count >= 3);
        Assert.All(deltas, d => Assert.Equal(0, d.Int("index")));
        Assert.StartsWith("call_", deltas[0].Str("id"), StringComparison.Ordinal);
        Assert.Equal("book_flight", deltas[0].Str("function.name"));
        Assert.All(deltas.Skip(1), d => Assert.Null(d["id"]));
        var arguments = string.Concat(deltas.Select(d => d.Str("function.arguments")));
        Assert.Equal(plain.Str("choices.0.message.tool_calls.0.function.arguments"), arguments);
        Assert.Equal("tool_calls", JsonNode.Parse(events[^2].Data)!.Str("choices.0.finish_reason"));
    }

    [Fact]
    public async Task MissingMessagesIsA400InOpenAIErrorShape()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, body) = await sim.PostAsync(Path, """{"model":"sim-openai"}""");

        Assert.Equal(400, status);
        Assert.Equal("invalid_request_error", body.Str("error.type"));
        Assert.Equal("messages", body.Str("error.param"));
        Assert.NotNull(body.Str("error.message"));
    }

    [Fact]
    public async Task OfficialOpenAISdkReadsCachedTokensAndToolCalls()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var client = new ChatClient("sim-openai", new ApiKeyCredential(sim.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(sim.BaseUrl + "/sim/openai/v1") });
        List<ChatMessage> messages = [new SystemChatMessage(Json.Filler(5000)), new UserChatMessage("Hello")];

        ChatCompletion first = await client.CompleteChatAsync(messages);
        ChatCompletion second = await client.CompleteChatAsync(messages);
        var options = new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("get_weather", "Weather.", BinaryData.FromString(WeatherSchema)) } };
        ChatCompletion withTool = await client.CompleteChatAsync(messages, options);

        Assert.Equal(ChatFinishReason.Stop, first.FinishReason);
        Assert.StartsWith("Simulated reply", first.Content[0].Text, StringComparison.Ordinal);
        Assert.Equal(0, first.Usage.InputTokenDetails.CachedTokenCount);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount >= 1024);
        Assert.Equal(0, second.Usage.InputTokenDetails.CachedTokenCount % 128);
        Assert.Equal(ChatFinishReason.ToolCalls, withTool.FinishReason);
        Assert.Equal("get_weather", withTool.ToolCalls[0].FunctionName);
        using var arguments = JsonDocument.Parse(withTool.ToolCalls[0].FunctionArguments);
        Assert.Equal("c", arguments.RootElement.GetProperty("unit").GetString());
    }

    [Fact]
    public async Task OfficialOpenAISdkStreamsTextAndUsage()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var client = new ChatClient("sim-openai", new ApiKeyCredential(sim.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(sim.BaseUrl + "/sim/openai/v1") });

        var text = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync(new List<ChatMessage> { new UserChatMessage("Tell me about caches") }))
        {
            foreach (var part in update.ContentUpdate)
                text.Append(part.Text);
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Contains("Tell me about caches", text.ToString(), StringComparison.Ordinal);
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.True(usage.OutputTokenCount > 0);
    }
}
