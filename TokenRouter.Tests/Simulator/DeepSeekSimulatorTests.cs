using System.ClientModel;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;

namespace TokenRouter.Tests.Simulator;

/// <summary>DeepSeek: OpenAI wire format, 64-token (256-byte) cache units, hit + miss = prompt tokens.</summary>
public sealed class DeepSeekSimulatorTests
{
    private const string Path = "/sim/deepseek/chat/completions";

    private static JsonObject UserRequest(string content) => new()
    {
        ["model"] = "sim-deepseek",
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
    };

    [Fact]
    public async Task SecondIdenticalRequestHitsIn64TokenUnitsAndHitPlusMissEqualsPromptTokens()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(5950)); // 6000 bytes = 1500 tokens, 23 whole 256-byte units

        var (_, first) = await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync("/sim/deepseek/v1/chat/completions", request);

        Assert.Equal(0, first.Int("usage.prompt_cache_hit_tokens"));
        Assert.Equal(1500, first.Int("usage.prompt_cache_miss_tokens"));
        Assert.Equal(1500, second.Int("usage.prompt_tokens"));
        Assert.Equal(23 * 64, second.Int("usage.prompt_cache_hit_tokens"));
        Assert.Equal(1500 - (23 * 64), second.Int("usage.prompt_cache_miss_tokens"));
        Assert.Equal(second.Int("usage.prompt_cache_hit_tokens"), second.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task PromptBelow1024TokensStillCachesWholeUnits()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(250)); // 300 bytes = 75 tokens, one whole unit

        await sim.PostAsync(Path, request);
        var (_, second) = await sim.PostAsync(Path, request);

        Assert.Equal(75, second.Int("usage.prompt_tokens"));
        Assert.Equal(64, second.Int("usage.prompt_cache_hit_tokens"));
        Assert.Equal(11, second.Int("usage.prompt_cache_miss_tokens"));
    }

    [Fact]
    public async Task SpacingInsideToolCallArgumentsLimitsTheHitToWhole64TokenUnitsBeforeIt()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var system = Json.Filler(5300);
        var toolResult = Json.Filler(2000, "sunny");

        await sim.PostAsync(Path, OpenAISimulatorTests.ToolHistoryRequest("sim-deepseek", system, """{"city":"Paris"}""", toolResult));
        var (_, spaced) = await sim.PostAsync(Path, OpenAISimulatorTests.ToolHistoryRequest("sim-deepseek", system, """{"city": "Paris"}""", toolResult));

        // The arguments differ at byte 5428: 21 whole units (1344 tokens) match; OpenAI's 512-byte units would give 1280.
        Assert.Equal(21 * 64, spaced.Int("usage.prompt_cache_hit_tokens"));
    }

    [Fact]
    public async Task DeepSeekAndOpenAICachesAreSeparate()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(5950));

        await sim.PostAsync("/sim/openai/v1/chat/completions", request);
        var (_, deepseek) = await sim.PostAsync(Path, request);

        Assert.Equal(0, deepseek.Int("usage.prompt_cache_hit_tokens"));
    }

    [Fact]
    public async Task StreamedUsageChunkCarriesDeepSeekCacheFields()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = UserRequest(Json.Filler(5950));
        await sim.PostAsync(Path, request);
        request["stream"] = true;
        request["stream_options"] = new JsonObject { ["include_usage"] = true };

        var events = await sim.StreamAsync(Path, request);

        var usage = JsonNode.Parse(events[^2].Data)!["usage"]!;
        Assert.Equal(23 * 64, usage.Int("prompt_cache_hit_tokens"));
        Assert.Equal(1500, usage.Int("prompt_cache_hit_tokens") + usage.Int("prompt_cache_miss_tokens"));
        Assert.Equal("[DONE]", events[^1].Data);
    }

    [Fact]
    public async Task OfficialOpenAISdkTalksToTheDeepSeekRoute()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var client = new ChatClient("sim-deepseek", new ApiKeyCredential(sim.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(sim.BaseUrl + "/sim/deepseek") });
        var messages = new List<ChatMessage> { new UserChatMessage(Json.Filler(5950)) };

        await client.CompleteChatAsync(messages);
        ChatCompletion second = await client.CompleteChatAsync(messages);

        Assert.Equal(23 * 64, second.Usage.InputTokenDetails.CachedTokenCount);
        Assert.StartsWith("Simulated reply", second.Content[0].Text, StringComparison.Ordinal);
    }
}
