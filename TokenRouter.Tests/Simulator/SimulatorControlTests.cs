using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenRouter.Simulator;

namespace TokenRouter.Tests.Simulator;

public sealed class SimulatorControlTests
{
    private const string OpenAIPath = "/sim/openai/v1/chat/completions";
    private const string DeepSeekPath = "/sim/deepseek/chat/completions";
    private const string AnthropicPath = "/sim/anthropic/v1/messages";

    private static JsonObject OpenAIRequest(string content) =>
        (JsonObject)Json.Parse($$"""{"model":"sim-openai","messages":[{"role":"user","content":"{{content}}"}]}""");

    private static JsonObject AnthropicRequest(string content) =>
        (JsonObject)Json.Parse($$"""{"model":"sim-anthropic","max_tokens":64,"messages":[{"role":"user","content":"{{content}}"}]}""");

    [Fact]
    public async Task StatsCountCallsPerFormatAndTotal()
    {
        await using var sim = await SimulatorHost.StartAsync();

        await sim.PostAsync(OpenAIPath, OpenAIRequest("a"));
        await sim.PostAsync(OpenAIPath, OpenAIRequest("b"));
        await sim.PostAsync("/sim/deepseek/v1/chat/completions", OpenAIRequest("c"));
        await sim.PostAsync(AnthropicPath, AnthropicRequest("d"));
        var stats = await sim.StatsAsync();

        Assert.Equal(4, stats.Int("total"));
        Assert.Equal(2, stats.Int("openai"));
        Assert.Equal(1, stats.Int("deepseek"));
        Assert.Equal(1, stats.Int("anthropic"));
        Assert.Equal(2, stats.Int("formats.openai.calls"));
        Assert.Equal(0, stats.Int("formats.openai.streams"));
    }

    [Fact]
    public async Task ConcurrentCallsAreAllCounted()
    {
        await using var sim = await SimulatorHost.StartAsync();

        await Task.WhenAll(Enumerable.Range(0, 40).Select(i => sim.PostAsync(OpenAIPath, OpenAIRequest("same"))));
        var stats = await sim.StatsAsync();

        Assert.Equal(40, stats.Int("openai"));
        Assert.Equal(40, stats.Int("total"));
    }

    [Fact]
    public async Task StatsSumTheTokensAsTheProviderWouldBillThem()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = Json.Parse($$$"""
            {"model":"sim-anthropic","max_tokens":64,"system":[{"type":"text","text":"{{{Json.Filler(4991)}}}","cache_control":{"type":"ephemeral"}}],
             "messages":[{"role":"user","content":"Hello"}]}
            """);

        var (_, first) = await sim.PostAsync(AnthropicPath, request);
        var (_, second) = await sim.PostAsync(AnthropicPath, request);
        var stats = await sim.StatsAsync();

        Assert.Equal(2 * 1257, stats.Int("formats.anthropic.promptTokens"));
        Assert.Equal(1250, stats.Int("formats.anthropic.cacheReadTokens"));
        Assert.Equal(1250, stats.Int("formats.anthropic.cacheWrite5mTokens"));
        Assert.Equal(0, stats.Int("formats.anthropic.cacheWrite1hTokens"));
        Assert.Equal(first.Int("usage.output_tokens") + second.Int("usage.output_tokens"), stats.Int("formats.anthropic.outputTokens"));
    }

    [Fact]
    public async Task ResetClearsCountersAndCaches()
    {
        await using var sim = await SimulatorHost.StartAsync();
        var request = OpenAIRequest(Json.Filler(5950));
        await sim.PostAsync(OpenAIPath, request);

        await sim.ResetAsync();
        var stats = await sim.StatsAsync();
        var (_, afterReset) = await sim.PostAsync(OpenAIPath, request);

        Assert.Equal(0, stats.Int("total"));
        Assert.Equal(0, stats.Int("formats.openai.promptTokens"));
        Assert.Equal(0, afterReset.Int("usage.prompt_tokens_details.cached_tokens"));
    }

    [Fact]
    public async Task FailStatusHeaderReturnsOpenAIRateLimitErrorShape()
    {
        await using var sim = await SimulatorHost.StartAsync();

        using var request = new HttpRequestMessage(HttpMethod.Post, OpenAIPath) { Content = new StringContent(OpenAIRequest("a").ToJsonString()) };
        request.Headers.Add("x-sim-fail-status", "429");
        using var response = await sim.Client.SendAsync(request);
        var body = Json.Parse(await response.Content.ReadAsStringAsync());
        var stats = await sim.StatsAsync();

        Assert.Equal(429, (int)response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal("rate_limit_exceeded", body.Str("error.code"));
        Assert.Equal("requests", body.Str("error.type"));
        Assert.NotNull(body.Str("error.message"));
        Assert.True(body["error"]!.AsObject().ContainsKey("param"));
        Assert.Equal(1, stats.Int("openai"));
        Assert.Equal(1, stats.Int("formats.openai.errors"));
    }

    [Fact]
    public async Task FailStatusHeaderReturnsAnthropicOverloadedErrorShape()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, body) = await sim.PostAsync(AnthropicPath, AnthropicRequest("a"), ("x-sim-fail-status", "529"));

        Assert.Equal(529, status);
        Assert.Equal("error", body.Str("type"));
        Assert.Equal("overloaded_error", body.Str("error.type"));
        Assert.NotNull(body.Str("error.message"));
    }

    [Fact]
    public async Task FailStatusHeaderReturnsDeepSeekServerErrorInOpenAIShape()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, body) = await sim.PostAsync(DeepSeekPath, OpenAIRequest("a"), ("x-sim-fail-status", "503"));

        Assert.Equal(503, status);
        Assert.Equal("server_error", body.Str("error.type"));
    }

    [Theory]
    [InlineData(OpenAIPath)]
    [InlineData(DeepSeekPath)]
    public async Task MalformedJsonIsA400InOpenAIErrorShape(string path)
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, body) = await sim.PostAsync(path, """{"model": "sim-openai", "messages": [""");

        Assert.Equal(400, status);
        Assert.Equal("invalid_request_error", body.Str("error.type"));
        Assert.Contains("parse the JSON body", body.Str("error.message"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedJsonIsA400InAnthropicErrorShape()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, body) = await sim.PostAsync(AnthropicPath, "{not json");

        Assert.Equal(400, status);
        Assert.Equal("error", body.Str("type"));
        Assert.Equal("invalid_request_error", body.Str("error.type"));
    }

    [Fact]
    public async Task LatencyHeaderDelaysButStillAnswers()
    {
        await using var sim = await SimulatorHost.StartAsync();

        var (status, body) = await sim.PostAsync(OpenAIPath, OpenAIRequest("a"), ("x-sim-latency-ms", "20"));

        Assert.Equal(200, status);
        Assert.Equal("chat.completion", body.Str("object"));
    }

    [Fact]
    public async Task ClientCancellationDuringLatencyLeavesTheSimulatorServing()
    {
        await using var sim = await SimulatorHost.StartAsync();
        using var cts = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, OpenAIPath) { Content = new StringContent(OpenAIRequest("a").ToJsonString()) };
        request.Headers.Add("x-sim-latency-ms", "60000");

        var pending = sim.Client.SendAsync(request, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        var (status, _) = await sim.PostAsync(OpenAIPath, OpenAIRequest("b"));

        Assert.Equal(200, status);
    }

    [Fact]
    public async Task DisabledSimulatorMapsNoRoutes()
    {
        await using var sim = await SimulatorHost.StartAsync(new Dictionary<string, string?> { ["Simulator:Enabled"] = "false" });

        using var response = await sim.Client.GetAsync("/sim/stats");

        Assert.Equal(404, (int)response.StatusCode);
    }

    [Fact]
    public async Task InvalidOptionsFailAtStartupWithAClearMessage()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            SimulatorHost.StartAsync(new Dictionary<string, string?> { ["Simulator:LatencyMs"] = "-1", ["Simulator:MaxCachedPrefixes"] = "10" }));

        Assert.Contains("Simulator:LatencyMs", error.Message, StringComparison.Ordinal);
        Assert.Contains("Simulator:MaxCachedPrefixes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OptionsBindFromTheSimulatorSection()
    {
        await using var sim = await SimulatorHost.StartAsync(new Dictionary<string, string?>
        {
            ["Simulator:DefaultCacheTtl"] = "00:01:00",
            ["Simulator:StreamChunkDelayMs"] = "1",
        });

        var options = sim.Services.GetRequiredService<IOptions<SimulatorOptions>>().Value;

        Assert.Equal(TimeSpan.FromMinutes(1), options.DefaultCacheTtl);
        Assert.Equal(1, options.StreamChunkDelayMs);
        Assert.True(options.Enabled);
        Assert.Equal(0, options.LatencyMs);
    }
}
