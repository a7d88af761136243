using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Providers;
using TokenRouter.Simulator;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Simulator;

/// <summary>Every <c>/sim/*</c> endpoint requires the simulator's own key; the gateway's <c>sim-*</c> providers send it.</summary>
public sealed class SimulatorKeyTests
{
    private const string OpenAIPath = "/sim/openai/v1/chat/completions";
    private const string DeepSeekPath = "/sim/deepseek/chat/completions";
    private const string AnthropicPath = "/sim/anthropic/v1/messages";

    private static readonly string OpenAIBody = """{"model":"sim-openai","messages":[{"role":"user","content":"hi"}]}""";
    private static readonly string AnthropicBody = """{"model":"sim-anthropic","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}""";

    public static TheoryData<string, string> ProtectedRoutes => new()
    {
        { "GET", "/sim/stats" },
        { "POST", "/sim/reset" },
        { "POST", OpenAIPath },
        { "POST", DeepSeekPath },
        { "POST", "/sim/deepseek/v1/chat/completions" },
    };

    [Theory]
    [MemberData(nameof(ProtectedRoutes))]
    public async Task Missing_key_gets_401_in_openai_shape(string method, string path)
    {
        await using var sim = await SimulatorHost.StartAsync();
        using var anonymous = new HttpClient { BaseAddress = new Uri(sim.BaseUrl) };

        using var response = await anonymous.SendAsync(Request(method, path, OpenAIBody));

        await AssertOpenAIUnauthorized(response);
    }

    [Fact]
    public async Task Missing_key_on_anthropic_route_gets_401_in_anthropic_shape()
    {
        await using var sim = await SimulatorHost.StartAsync();
        using var anonymous = new HttpClient { BaseAddress = new Uri(sim.BaseUrl) };

        using var response = await anonymous.SendAsync(Request("POST", AnthropicPath, AnthropicBody));

        await AssertAnthropicUnauthorized(response);
    }

    [Theory]
    [InlineData("Authorization", "Bearer sk-sim-wrong")]
    [InlineData("x-api-key", "sk-sim-wrong")]
    [InlineData("Authorization", "Basic c2s6c2s=")]
    public async Task Wrong_key_gets_401_and_is_not_counted(string header, string value)
    {
        await using var sim = await SimulatorHost.StartAsync();
        using var anonymous = new HttpClient { BaseAddress = new Uri(sim.BaseUrl) };

        using var openAI = Request("POST", OpenAIPath, OpenAIBody);
        openAI.Headers.TryAddWithoutValidation(header, value);
        using var anthropic = Request("POST", AnthropicPath, AnthropicBody);
        anthropic.Headers.TryAddWithoutValidation(header, value);
        using var stats = Request("GET", "/sim/stats", null);
        stats.Headers.TryAddWithoutValidation(header, value);

        await AssertOpenAIUnauthorized(await anonymous.SendAsync(openAI));
        await AssertAnthropicUnauthorized(await anonymous.SendAsync(anthropic));
        await AssertOpenAIUnauthorized(await anonymous.SendAsync(stats));
        Assert.Equal(0, (await sim.StatsAsync()).Int("total"));
    }

    [Fact]
    public async Task Key_a_prefix_of_the_real_one_is_rejected()
    {
        await using var sim = await SimulatorHost.StartAsync();
        using var anonymous = new HttpClient { BaseAddress = new Uri(sim.BaseUrl) };
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", sim.ApiKey[..^1]);

        await AssertOpenAIUnauthorized(await anonymous.GetAsync("/sim/stats"));
    }

    [Fact]
    public async Task Key_as_bearer_or_x_api_key_is_accepted_on_every_route()
    {
        await using var sim = await SimulatorHost.StartAsync();
        using var anonymous = new HttpClient { BaseAddress = new Uri(sim.BaseUrl) };

        using var bearer = Request("POST", OpenAIPath, OpenAIBody);
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", sim.ApiKey);
        using var xApiKey = Request("POST", AnthropicPath, AnthropicBody);
        xApiKey.Headers.TryAddWithoutValidation("x-api-key", sim.ApiKey);
        using var deepSeek = Request("POST", DeepSeekPath, OpenAIBody);
        deepSeek.Headers.TryAddWithoutValidation("x-api-key", sim.ApiKey);

        Assert.Equal(200, (int)(await anonymous.SendAsync(bearer)).StatusCode);
        Assert.Equal(200, (int)(await anonymous.SendAsync(xApiKey)).StatusCode);
        Assert.Equal(200, (int)(await anonymous.SendAsync(deepSeek)).StatusCode);
        Assert.Equal(3, (await sim.StatsAsync()).Int("total"));
        await sim.ResetAsync();
        Assert.Equal(0, (await sim.StatsAsync()).Int("total"));
    }

    [Fact]
    public async Task Configured_key_is_the_one_required()
    {
        await using var sim = await SimulatorHost.StartAsync(new Dictionary<string, string?> { ["Simulator:ApiKey"] = "sk-sim-configured-for-tests" });
        using var anonymous = new HttpClient { BaseAddress = new Uri(sim.BaseUrl) };
        anonymous.DefaultRequestHeaders.TryAddWithoutValidation("x-api-key", "sk-sim-configured-for-tests");

        Assert.Equal("sk-sim-configured-for-tests", sim.ApiKey);
        Assert.Equal(200, (int)(await anonymous.GetAsync("/sim/stats")).StatusCode);
    }

    [Fact]
    public async Task Unconfigured_key_is_random_per_start_and_the_same_for_every_options_reader()
    {
        await using var a = await SimulatorHost.StartAsync();
        await using var b = await SimulatorHost.StartAsync();

        Assert.StartsWith("sk-sim-", a.ApiKey, StringComparison.Ordinal);
        Assert.True(a.ApiKey.Length >= "sk-sim-".Length + 43, a.ApiKey); // 32 random bytes, base64url
        Assert.NotEqual(a.ApiKey, b.ApiKey);
        Assert.Equal(a.ApiKey, a.Services.GetRequiredService<IOptionsMonitor<SimulatorOptions>>().CurrentValue.ApiKey);
        using var scope = a.Services.CreateScope();
        Assert.Equal(a.ApiKey, scope.ServiceProvider.GetRequiredService<IOptionsSnapshot<SimulatorOptions>>().Value.ApiKey);
    }

    [Fact]
    public async Task Gateway_sim_providers_send_the_key_and_direct_calls_need_it()
    {
        await using var gateway = new GatewayFactory();
        using var http = gateway.CreateGatewayClient();
        var simKey = gateway.Service<IOptions<SimulatorOptions>>().Value.ApiKey;

        using var openAI = await http.PostAsync("v1/chat/completions", Json(OpenAIBody));
        using var anthropic = await http.PostAsync("v1/messages", Json(AnthropicBody));
        using var deepSeek = await http.PostAsync("v1/chat/completions", Json(OpenAIBody.Replace("sim-openai", "sim-deepseek", StringComparison.Ordinal)));

        Assert.Equal(200, (int)openAI.StatusCode);
        Assert.Equal(200, (int)anthropic.StatusCode);
        Assert.Equal(200, (int)deepSeek.StatusCode);
        Assert.StartsWith("Simulated reply", JsonNode.Parse(await openAI.Content.ReadAsStringAsync())!.Str("choices.0.message.content"), StringComparison.Ordinal);
        Assert.All(gateway.Service<ModelRouter>().Providers.Where(p => p.IsSimulator), p => Assert.Equal(simKey, p.ApiKey));

        // The gateway's own client key is not the simulator's: /sim/* stays closed to it.
        await AssertOpenAIUnauthorized(await http.GetAsync("sim/stats"));
        using var direct = new HttpClient { BaseAddress = gateway.BaseAddress };
        direct.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", simKey);
        var stats = JsonNode.Parse(await direct.GetStringAsync("sim/stats"))!;
        Assert.Equal(3, stats.Int("total"));
    }

    private static HttpRequestMessage Request(string method, string path, string? json) =>
        new(new HttpMethod(method), path)
        {
            Content = json is null || method == "GET" ? null : Json(json),
        };

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task AssertOpenAIUnauthorized(HttpResponseMessage response)
    {
        using (response)
        {
            Assert.Equal(401, (int)response.StatusCode);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal("invalid_request_error", body.Str("error.type"));
            Assert.Equal("invalid_api_key", body.Str("error.code"));
            Assert.False(string.IsNullOrEmpty(body.Str("error.message")));
            Assert.Null(body["type"]);
        }
    }

    private static async Task AssertAnthropicUnauthorized(HttpResponseMessage response)
    {
        using (response)
        {
            Assert.Equal(401, (int)response.StatusCode);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal("error", body.Str("type"));
            Assert.Equal("authentication_error", body.Str("error.type"));
            Assert.False(string.IsNullOrEmpty(body.Str("error.message")));
        }
    }
}
