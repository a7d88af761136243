using System.Text.Json;
using System.Text.Json.Nodes;
using Anthropic;
using Anthropic.Models.Messages;
using Microsoft.Extensions.DependencyInjection;

namespace TokenRouter.Tests.Simulator;

/// <summary>
/// Hand-computed numbers use the simulator's block rendering: system block = <c>&lt;system&gt;</c> (8) + text + "\n";
/// user turn = "\n\nHuman: " (9) + text + "\n"; assistant turn = "\n\nAssistant: " (13) + text + "\n"; the
/// prompt ends with "\n\nAssistant:" (12); a tool = <c>&lt;tool&gt;</c> (6) + name + "\n" + description + "\n" +
/// compact schema + "\n". A position of b bytes is ceil(b / 4) tokens.
/// </summary>
public sealed class AnthropicSimulatorTests
{
    private const string Path = "/sim/anthropic/v1/messages";
    private static readonly JsonObject Ephemeral = new() { ["type"] = "ephemeral" };

    private static JsonObject Request(JsonNode? system, params JsonNode[] messages)
    {
        var request = new JsonObject { ["model"] = "sim-anthropic", ["max_tokens"] = 256 };
        if (system is not null)
            request["system"] = system;
        request["messages"] = new JsonArray(messages);
        return request;
    }

    private static JsonObject User(JsonNode content) => new() { ["role"] = "user", ["content"] = content };

    private static JsonObject Assistant(JsonNode content) => new() { ["role"] = "assistant", ["content"] = content };

    private static JsonObject Text(string text, JsonObject? cacheControl = null)
    {
        var block = new JsonObject { ["type"] = "text", ["text"] = text };
        if (cacheControl is not null)
            block["cache_control"] = cacheControl.DeepClone();
        return block;
    }

    private static void AssertUsage(JsonNode body, int input, int read, int write5m, int write1h)
    {
        Assert.Equal(input, body.Int("usage.input_tokens"));
        Assert.Equal(read, body.Int("usage.cache_read_input_tokens"));
        Assert.Equal(write5m + write1h, body.Int("usage.cache_creation_input_tokens"));
        Assert.Equal(write5m, body.Int("usage.cache_creation.ephemeral_5m_input_tokens"));
        Assert.Equal(write1h, body.Int("usage.cache_creation.ephemeral_1h_input_tokens"));
    }

    [Fact]
    public async Task RequestWithoutBreakpointsCachesNothing()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(Json.Filler(4991), User("Hello"));

        var (status, first) = await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);

        Assert.Equal(200, status);
        AssertUsage(first, input: 1257, read: 0, write5m: 0, write1h: 0);
        AssertUsage(second, input: 1257, read: 0, write5m: 0, write1h: 0);
    }

    [Fact]
    public async Task SystemBreakpointWritesOnFirstRequestAndReadsOnSecond()
    {
        await using var sim = await SimulatorHost.StartAsync();
        // System block ends at byte 5000 (1250 tokens); the prompt is 5027 bytes (1257 tokens).
        var request = Request(new JsonArray(Text(Json.Filler(4991), Ephemeral)), User("Hello"));

        var (_, first) = await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);
        var (_, otherQuestion) = await sim.PostAsync(Path, Request(new JsonArray(Text(Json.Filler(4991), Ephemeral)), User("Bye")));

        AssertUsage(first, input: 7, read: 0, write5m: 1250, write1h: 0);
        AssertUsage(second, input: 7, read: 1250, write5m: 0, write1h: 0);
        Assert.Equal(1250, otherQuestion.Int("usage.cache_read_input_tokens"));
    }

    [Fact]
    public async Task BreakpointBelowTheMinimumCacheableLengthCachesNothing()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(new JsonArray(Text(Json.Filler(1000), Ephemeral)), User("Hello"));

        await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);

        AssertUsage(second, input: 259, read: 0, write5m: 0, write1h: 0);
    }

    [Fact]
    public async Task MovingBreakpointReadsThePreviousTurnsPrefixAndWritesOnlyTheNewPart()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(4991);
        // Turn 1: the user block ends at byte 5012 (1253 tokens); prompt 5024 bytes (1256 tokens).
        var turn1 = Request(system, User(new JsonArray(Text("Hi", Ephemeral))));
        // Turn 2: "Hi" as a plain string renders the same bytes; the new breakpoint ends at 5045 (1262 tokens); prompt 1265 tokens.
        var turn2 = Request(system, User("Hi"), Assistant("Hello"), User(new JsonArray(Text("More", Ephemeral))));

        var (_, first) = await sim.PostAsync(Path, turn1);
        var (_, second) = await sim.PostAsync(Path, turn2);

        AssertUsage(first, input: 3, read: 0, write5m: 1253, write1h: 0);
        AssertUsage(second, input: 3, read: 1253, write5m: 9, write1h: 0);
    }

    private static JsonObject LongConversation(string system, int assistantBlocks)
    {
        var blocks = new JsonArray();
        for (var i = 0; i < assistantBlocks; i++)
            blocks.Add(Text($"a{i}"));
        return Request(system, User("Hi"), Assistant(blocks), User(new JsonArray(Text("More", Ephemeral))));
    }

    [Fact]
    public async Task LookBackFindsACachedPrefixUpTo20BlocksBeforeTheBreakpoint()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(4991);
        await sim.PostAsync(Path, Request(system, User(new JsonArray(Text("Hi", Ephemeral)))));

        // The cached prefix ends at block 1; the breakpoint sits on block 21 (19 assistant blocks in between).
        var (_, within) = await sim.PostAsync(Path, LongConversation(system, assistantBlocks: 19));

        Assert.Equal(1253, within.Int("usage.cache_read_input_tokens"));
    }

    [Fact]
    public async Task LookBackDoesNotReachACachedPrefixMoreThan20BlocksBeforeTheBreakpoint()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(4991);
        await sim.PostAsync(Path, Request(system, User(new JsonArray(Text("Hi", Ephemeral)))));

        // The breakpoint sits on block 22: the look-back covers blocks 22..2 and misses block 1.
        var (_, beyond) = await sim.PostAsync(Path, LongConversation(system, assistantBlocks: 20));

        Assert.Equal(0, beyond.Int("usage.cache_read_input_tokens"));
        Assert.Equal(beyond.Int("usage.cache_creation_input_tokens") + beyond.Int("usage.input_tokens"), TotalTokens(beyond));
    }

    private static int TotalTokens(JsonNode body) =>
        body.Int("usage.input_tokens") + body.Int("usage.cache_read_input_tokens") + body.Int("usage.cache_creation_input_tokens");

    private static JsonObject LongTool(JsonObject? cacheControl)
    {
        // "<tool>" + "get_weather\n" + 4200-byte description + "\n" + {"type":"object"} + "\n" = 4237 bytes (1060 tokens).
        var tool = new JsonObject
        {
            ["name"] = "get_weather",
            ["description"] = Json.Filler(4200, "tool"),
            ["input_schema"] = new JsonObject { ["type"] = "object" },
        };
        if (cacheControl is not null)
            tool["cache_control"] = cacheControl.DeepClone();
        return tool;
    }

    private static JsonObject MixedTtlRequest(string system)
    {
        // System block ends at 6246 bytes (1562 tokens); the prompt is 6270 bytes (1568 tokens).
        var request = Request(new JsonArray(Text(system, Ephemeral)), User("Hi"));
        request["tools"] = new JsonArray(LongTool(new JsonObject { ["type"] = "ephemeral", ["ttl"] = "1h" }));
        return request;
    }

    [Fact]
    public async Task OneHourBreakpointBeforeFiveMinuteOneSplitsTheWriteByTtl()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(2000);

        var (status, first) = await sim.PostAsync(Path, MixedTtlRequest(system));
        var (_, second) = await sim.PostAsync(Path, MixedTtlRequest(system));
        var (_, otherSystem) = await sim.PostAsync(Path, MixedTtlRequest(Json.Filler(2000, "other")));

        Assert.Equal(200, status);
        AssertUsage(first, input: 6, read: 0, write5m: 502, write1h: 1060);
        AssertUsage(second, input: 6, read: 1562, write5m: 0, write1h: 0);
        AssertUsage(otherSystem, input: 6, read: 1060, write5m: 502, write1h: 0);
    }

    [Fact]
    public async Task FiveMinuteEntryExpiresWhileOneHourEntrySurvives()
    {
        var clock = new ManualTimeProvider();
        await using var sim = await SimulatorHost.StartAsync(configureServices: s => s.AddSingleton<TimeProvider>(clock));
        var system = Json.Filler(2000);

        await sim.PostAsync(Path, MixedTtlRequest(system));
        clock.Advance(TimeSpan.FromMinutes(6));
        var (_, afterSixMinutes) = await sim.PostAsync(Path, MixedTtlRequest(system));
        clock.Advance(TimeSpan.FromMinutes(61));
        var (_, afterAnHour) = await sim.PostAsync(Path, MixedTtlRequest(system));

        AssertUsage(afterSixMinutes, input: 6, read: 1060, write5m: 502, write1h: 0);
        AssertUsage(afterAnHour, input: 6, read: 0, write5m: 502, write1h: 1060);
    }

    [Fact]
    public async Task TopLevelCacheControlMarksTheLastBlock()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(Json.Filler(4991), User("Hello"));
        request["cache_control"] = Ephemeral.DeepClone();

        var (_, first) = await sim.PostAsync(Path, request);

        // The user block ends at byte 5015 (1254 tokens) of a 1257-token prompt.
        AssertUsage(first, input: 3, read: 0, write5m: 1254, write1h: 0);
    }

    [Fact]
    public async Task FifthBreakpointIsA400InvalidRequestError()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = new JsonArray(Text("a", Ephemeral), Text("b", Ephemeral), Text("c", Ephemeral), Text("d", Ephemeral));
        var request = Request(system, User(new JsonArray(Text("e", Ephemeral))));

        var (status, body) = await sim.PostAsync(Path, request);

        Assert.Equal(400, status);
        Assert.Equal("error", body.Str("type"));
        Assert.Equal("invalid_request_error", body.Str("error.type"));
        Assert.Contains("maximum of 4", body.Str("error.message"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneHourBreakpointAfterAFiveMinuteOneIsA400()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(
            new JsonArray(Text("system", Ephemeral)),
            User(new JsonArray(Text("Hi", new JsonObject { ["type"] = "ephemeral", ["ttl"] = "1h" }))));

        var (status, body) = await sim.PostAsync(Path, request);

        Assert.Equal(400, status);
        Assert.Equal("invalid_request_error", body.Str("error.type"));
        Assert.Contains("ttl='1h'", body.Str("error.message"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingMaxTokensIsA400()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(null, User("Hi"));
        request.Remove("max_tokens");

        var (status, body) = await sim.PostAsync(Path, request);

        Assert.Equal(400, status);
        Assert.Contains("max_tokens", body.Str("error.message"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SystemRoleInsideMessagesIsA400()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(null, new JsonObject { ["role"] = "system", ["content"] = "Be brief" }, User("Hi"));

        var (status, body) = await sim.PostAsync(Path, request);

        Assert.Equal(400, status);
        Assert.Equal("invalid_request_error", body.Str("error.type"));
    }

    [Fact]
    public async Task ConsecutiveUserTurnsAreCombinedAsTheApiDocuments()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var split = Request(null, User("Hi"), User("there"));
        var combined = Request(null, User(new JsonArray(Text("Hi"), Text("there"))));

        var (status, splitBody) = await sim.PostAsync(Path, split);
        var (_, combinedBody) = await sim.PostAsync(Path, combined);

        Assert.Equal(200, status);
        Assert.Equal(combinedBody.Int("usage.input_tokens"), splitBody.Int("usage.input_tokens"));
        Assert.Equal(combinedBody.Str("content.0.text"), splitBody.Str("content.0.text"));
    }

    [Fact]
    public async Task EmptyTextBlockIsA400()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, _) = await sim.PostAsync(Path, Request(null, User(new JsonArray(Text("")))));

        Assert.Equal(400, status);
    }

    private static JsonObject WeatherTool() => new()
    {
        ["name"] = "get_weather",
        ["description"] = "Weather.",
        ["input_schema"] = JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city","days"]}"""),
    };

    [Fact]
    public async Task OfferedToolsAndAUserTurnProduceAToolUseBlockWithAnInputObject()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(null, User("Weather in Paris?"));
        request["tools"] = new JsonArray(WeatherTool());

        var (_, body) = await sim.PostAsync(Path, request);

        Assert.Equal("tool_use", body.Str("stop_reason"));
        var block = body["content"]![0]!;
        Assert.Equal("tool_use", block.Str("type"));
        Assert.StartsWith("toolu_", block.Str("id"), StringComparison.Ordinal);
        Assert.Equal("get_weather", block.Str("name"));
        Assert.Equal(JsonValueKind.Object, block["input"]!.GetValueKind());
        Assert.Equal(1, block.Int("input.days"));
        Assert.NotNull(block.Str("input.city"));
    }

    [Fact]
    public async Task ToolResultAsLastTurnProducesATextReply()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var toolUse = new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_1", ["name"] = "get_weather", ["input"] = new JsonObject { ["city"] = "Paris", ["days"] = 1 } };
        var toolResult = new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_1", ["content"] = "sunny" };
        var request = Request(null, User("Weather in Paris?"), Assistant(new JsonArray(toolUse)), User(new JsonArray(toolResult)));
        request["tools"] = new JsonArray(WeatherTool());

        var (_, body) = await sim.PostAsync(Path, request);

        Assert.Equal("end_turn", body.Str("stop_reason"));
        Assert.Equal("text", body.Str("content.0.type"));
    }

    [Fact]
    public async Task MaxTokensTruncatesWithStopReasonMaxTokens()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(null, User("Tell me about caches"));
        request["max_tokens"] = 2;

        var (_, body) = await sim.PostAsync(Path, request);

        Assert.Equal("max_tokens", body.Str("stop_reason"));
        Assert.Equal(2, body.Int("usage.output_tokens"));
    }

    [Fact]
    public async Task StreamEmitsTheAnthropicEventSequenceWithTheSameUsageAsNonStreaming()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(new JsonArray(Text(Json.Filler(4991), Ephemeral)), User("Hello"));
        await sim.PostAsync(Path, request);
        var (_, plain) = await sim.PostAsync(Path, request);
        await sim.ResetAsync();
        await sim.PostAsync(Path, request);

        request["stream"] = true;
        var events = await sim.StreamAsync(Path, request);

        var names = events.Select(e => e.Event).ToList();
        Assert.Equal(["message_start", "ping", "content_block_start"], names.Take(3));
        Assert.Equal(["content_block_stop", "message_delta", "message_stop"], names.TakeLast(3));
        Assert.All(names.Skip(3).SkipLast(3), n => Assert.Equal("content_block_delta", n));
        Assert.True(names.Count(n => n == "content_block_delta") >= 2);
        var data = events.Select(e => JsonNode.Parse(e.Data)!).ToList();
        Assert.All(events.Zip(data), p => Assert.Equal(p.First.Event, p.Second.Str("type")));

        var startUsage = data[0]["message"]!["usage"]!;
        Assert.Equal(plain.Int("usage.input_tokens"), startUsage.Int("input_tokens"));
        Assert.Equal(1250, startUsage.Int("cache_read_input_tokens"));
        Assert.Equal(plain.Int("usage.cache_creation_input_tokens"), startUsage.Int("cache_creation_input_tokens"));
        Assert.True(JsonNode.DeepEquals(plain["usage"]!["cache_creation"], startUsage["cache_creation"]));
        var text = string.Concat(data.Where(d => d.Str("type") == "content_block_delta").Select(d => d.Str("delta.text")));
        Assert.Equal(plain.Str("content.0.text"), text);
        Assert.Equal("text_delta", data[3].Str("delta.type"));
        var delta = data[^2];
        Assert.Equal("end_turn", delta.Str("delta.stop_reason"));
        Assert.Equal(plain.Int("usage.output_tokens"), delta.Int("usage.output_tokens"));
        Assert.Equal(plain.Int("usage.cache_read_input_tokens"), delta.Int("usage.cache_read_input_tokens"));
    }

    [Fact]
    public async Task StreamedToolUseSendsInputJsonDeltasThatFormTheInputObject()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Request(null, User("Weather in Paris?"));
        request["tools"] = new JsonArray(WeatherTool());
        var (_, plain) = await sim.PostAsync(Path, request.DeepClone());
        request["stream"] = true;

        var events = await sim.StreamAsync(Path, request);

        var data = events.Select(e => JsonNode.Parse(e.Data)!).ToList();
        var start = data.Single(d => d.Str("type") == "content_block_start");
        Assert.Equal("tool_use", start.Str("content_block.type"));
        Assert.Equal("get_weather", start.Str("content_block.name"));
        Assert.StartsWith("toolu_", start.Str("content_block.id"), StringComparison.Ordinal);
        var partials = data.Where(d => d.Str("type") == "content_block_delta").ToList();
        Assert.True(partials.Count >= 2);
        Assert.All(partials, p => Assert.Equal("input_json_delta", p.Str("delta.type")));
        var input = JsonNode.Parse(string.Concat(partials.Select(p => p.Str("delta.partial_json"))));
        Assert.True(JsonNode.DeepEquals(plain["content"]![0]!["input"], input));
        Assert.Equal("tool_use", data.Single(d => d.Str("type") == "message_delta").Str("delta.stop_reason"));
    }

    [Fact]
    public async Task OfficialAnthropicSdkReadsCacheUsageAndToolUse()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var client = new AnthropicClient { ApiKey = sim.ApiKey, BaseUrl = sim.BaseUrl + "/sim/anthropic" };
        var parameters = new MessageCreateParams
        {
            Model = "sim-anthropic",
            MaxTokens = 256,
            System = new List<TextBlockParam> { new(Json.Filler(4991)) { CacheControl = new CacheControlEphemeral() } },
            Messages = [new UserMessageParam("Hello")],
        };

        var first = await client.Messages.Create(parameters);
        var second = await client.Messages.Create(parameters);
        var withTool = await client.Messages.Create(parameters with
        {
            Tools = [new Tool { Name = "get_weather", Description = "Weather.", InputSchema = new InputSchema { Required = ["city"], Properties = new Dictionary<string, JsonElement> { ["city"] = JsonDocument.Parse("""{"type":"string"}""").RootElement } } }],
        });

        Assert.Equal(1250, first.Usage.CacheCreationInputTokens);
        Assert.Equal(1250, first.Usage.CacheCreation!.Ephemeral5mInputTokens);
        Assert.Equal(1250, second.Usage.CacheReadInputTokens);
        Assert.Equal(7, second.Usage.InputTokens);
        Assert.True(second.Content[0].TryPickText(out var text));
        Assert.StartsWith("Simulated reply", text.Text, StringComparison.Ordinal);
        Assert.True(withTool.Content[0].TryPickToolUse(out var toolUse));
        Assert.Equal("get_weather", toolUse.Name);
        Assert.Equal(JsonValueKind.String, toolUse.Input["city"].ValueKind);
    }

    [Fact]
    public async Task OfficialAnthropicSdkStreamsEvents()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var client = new AnthropicClient { ApiKey = sim.ApiKey, BaseUrl = sim.BaseUrl + "/sim/anthropic" };
        var parameters = new MessageCreateParams
        {
            Model = "sim-anthropic",
            MaxTokens = 256,
            Messages = [new UserMessageParam("Tell me about caches")],
        };

        var text = new System.Text.StringBuilder();
        long? outputTokens = null;
        var sawStart = false;
        var sawStop = false;
        await foreach (var e in client.Messages.CreateStreaming(parameters))
        {
            sawStart |= e.TryPickStart(out _);
            sawStop |= e.TryPickStop(out _);
            if (e.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var textDelta))
                text.Append(textDelta.Text);
            if (e.TryPickDelta(out var messageDelta))
                outputTokens = messageDelta.Usage.OutputTokens;
        }

        Assert.True(sawStart);
        Assert.True(sawStop);
        Assert.Contains("Tell me about caches", text.ToString(), StringComparison.Ordinal);
        Assert.True(outputTokens > 0);
    }
}
