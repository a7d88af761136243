using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>The OpenAI-compatible endpoint driven by the official OpenAI SDK against a fake provider over real HTTP.</summary>
public sealed class ChatCompletionsApiTests : GatewayWithFakeProvider
{
    protected override void Configure(Dictionary<string, string?> settings)
    {
        settings["Gateway:ProviderResponseTimeout"] = "00:00:02";
    }

    private ChatClient Client(string model = "gpt-4o", string key = GatewayFactory.ClientKey) =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1") });

    [Fact]
    public async Task Non_streaming_reply_and_usage_come_back_through_the_sdk()
    {
        Provider.RespondOpenAIText("Hello from upstream", new OpenAIUsage(Prompt: 2048, Completion: 5, Cached: 1024));

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("Hi")]);

        Assert.Equal("Hello from upstream", completion.Content[0].Text);
        Assert.Equal(2048, completion.Usage.InputTokenCount);
        Assert.Equal(1024, completion.Usage.InputTokenDetails.CachedTokenCount);
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("/v1/chat/completions", upstream.Path);
        Assert.Equal("Bearer sk-upstream-openai", upstream.Header("Authorization"));
        Assert.Equal("application/json", upstream.Header("Content-Type"));
        Assert.Equal("gpt-4o", upstream.Model);
    }

    [Fact]
    public async Task Streaming_reply_arrives_in_pieces_and_usage_chunk_is_hidden_unless_asked()
    {
        Provider.RespondOpenAIText("one two three four", new OpenAIUsage(100, 4));

        var pieces = new List<string>();
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Count")]))
        {
            foreach (var part in update.ContentUpdate) pieces.Add(part.Text);
        }

        Assert.True(pieces.Count > 1, "the reply should arrive as several deltas");
        Assert.Equal("one two three four", string.Concat(pieces));
        var upstream = Assert.Single(Provider.Requests);
        Assert.True(upstream.IsStreaming);
        Assert.True(upstream.IncludeUsage, "the gateway always asks upstream for stream usage");

        using var http = Gateway.CreateGatewayClient();
        var raw = await PostRawAsync(http, """{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Count"}]}""");
        Assert.DoesNotContain("\"usage\":{", raw);
        Assert.EndsWith("data: [DONE]\n\n", raw);

        var withUsage = await PostRawAsync(http, """{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count"}]}""");
        Assert.Contains("\"usage\":{", withUsage);
    }

    [Fact]
    public async Task Streaming_usage_is_metered_even_when_hidden_from_the_client()
    {
        Provider.RespondOpenAIText("metered", new OpenAIUsage(Prompt: 1000, Completion: 10, Cached: 512));
        using var http = Gateway.CreateGatewayClient();

        await PostRawAsync(http, """{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}""");

        var record = await Matrix.SingleUsageRecordAsync(Gateway);
        Assert.Equal(new Usage(1000, 512, 0, 0, 10), record.Usage);
        Assert.True(record.Stream);
        // gpt-4o: 488 × $2.50 + 512 × $1.25 + 10 × $10 per 1M tokens.
        Assert.Equal((488 * 2.50m + 512 * 1.25m + 10 * 10m) / 1_000_000m, record.CostUsd);
    }

    [Fact]
    public async Task Tool_calls_reach_the_client_with_name_and_arguments()
    {
        Provider.RespondOpenAIToolCall("get_weather", """{"city":"Paris"}""", new OpenAIUsage(50, 10));
        var tool = ChatTool.CreateFunctionTool("get_weather", "Weather for a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("Weather in Paris?")], new ChatCompletionOptions { Tools = { tool } });

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Paris", JsonDocument.Parse(call.FunctionArguments).RootElement.GetProperty("city").GetString());
        var sentTools = Provider.Requests[0].Json!.Value.GetProperty("tools");
        Assert.Equal("get_weather", sentTools[0].GetProperty("function").GetProperty("name").GetString());
    }

    [Fact]
    public async Task Streamed_tool_call_arguments_are_reassembled_by_the_sdk()
    {
        Provider.RespondOpenAIToolCall("lookup", """{"id":42,"verbose":true}""", new OpenAIUsage(50, 10));
        var tool = ChatTool.CreateFunctionTool("lookup", "Look up", BinaryData.FromString("""{"type":"object","properties":{"id":{"type":"integer"}}}"""));

        var args = new StringBuilder();
        string? name = null;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("look")], new ChatCompletionOptions { Tools = { tool } }))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                name ??= call.FunctionName;
                if (call.FunctionArgumentsUpdate is { } piece) args.Append(piece.ToString());
            }
        }

        Assert.Equal("lookup", name);
        Assert.Equal(42, JsonDocument.Parse(args.ToString()).RootElement.GetProperty("id").GetInt32());
    }

    [Fact]
    public async Task Unknown_request_fields_are_passed_on_untouched()
    {
        Provider.RespondOpenAIText("ok", new OpenAIUsage(10, 1));
        using var http = Gateway.CreateGatewayClient();

        await PostRawAsync(http, """{"model":"gpt-4o","messages":[{"role":"user","content":"x","x_note":{"a":[1,2]}}],"seed":7,"logit_bias":{"50256":-100},"response_format":{"type":"json_object"}}""");

        var sent = Provider.Requests[0].Json!.Value;
        Assert.Equal(7, sent.GetProperty("seed").GetInt32());
        Assert.Equal(-100, sent.GetProperty("logit_bias").GetProperty("50256").GetInt32());
        Assert.Equal("json_object", sent.GetProperty("response_format").GetProperty("type").GetString());
        Assert.Equal(2, sent.GetProperty("messages")[0].GetProperty("x_note").GetProperty("a")[1].GetInt32());
    }

    [Fact]
    public async Task Cost_headers_follow_the_price_table()
    {
        Provider.RespondOpenAIText("ok", new OpenAIUsage(Prompt: 2000, Completion: 100, Cached: 1024));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // gpt-4o-mini: input $0.15, cached $0.075, output $0.60 per 1M.
        var cost = (976 * 0.15m + 1024 * 0.075m + 100 * 0.60m) / 1_000_000m;
        var savings = (2000 * 0.15m + 100 * 0.60m) / 1_000_000m - cost;
        Assert.Equal(cost, decimal.Parse(Header(response, "x-tokenrouter-cost-usd"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(savings, decimal.Parse(Header(response, "x-tokenrouter-cache-savings-usd"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("1024", Header(response, "x-tokenrouter-cached-tokens"));
        Assert.Equal(32, Header(response, "x-tokenrouter-prefix-hash").Length);
    }

    [Fact]
    public async Task Unpriced_model_is_flagged_not_billed_zero()
    {
        Provider.RespondOpenAIText("ok", new OpenAIUsage(100, 10));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-unreleased-x","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("x-tokenrouter-cost-usd"));
        Assert.Equal("true", Header(response, "x-tokenrouter-unpriced"));
        var record = await Matrix.SingleUsageRecordAsync(Gateway);
        Assert.True(record.Unpriced);
        Assert.Null(record.CostUsd);
    }

    [Theory]
    [InlineData("{not json", "invalid_json")]
    [InlineData("[1,2]", null)]
    [InlineData("""{"model":"gpt-4o"}""", null)]
    [InlineData("""{"model":42,"messages":[]}""", null)]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"wizard","content":"x"}]}""", null)]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}""", null)]
    public async Task Malformed_requests_get_400_in_openai_error_shape(string body, string? code)
    {
        using var http = Gateway.CreateGatewayClient();
        using var response = await http.PostAsync("v1/chat/completions", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorOf(response);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        if (code is not null) Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal(0, Provider.CallCount);
    }

    [Fact]
    public async Task Missing_or_unknown_key_gets_401()
    {
        using var anonymous = Gateway.CreateGatewayClient(key: null);
        using var noKey = await anonymous.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""));
        using var wrong = Gateway.CreateGatewayClient(key: "sk-tr-wrong");
        using var badKey = await wrong.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.Unauthorized, noKey.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, badKey.StatusCode);
        Assert.Equal("authentication_error", (await ErrorOf(badKey)).GetProperty("type").GetString());
        Assert.DoesNotContain("sk-tr-wrong", await badKey.Content.ReadAsStringAsync());
        Assert.Equal(0, Provider.CallCount);
    }

    [Fact]
    public async Task Unknown_model_gets_404_model_not_found()
    {
        using var http = Gateway.CreateGatewayClient();
        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"llama-9000","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("model_not_found", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Body_over_the_limit_gets_413()
    {
        await using var small = new GatewayFactory(new Dictionary<string, string?>(GatewayFactory.ProvidersAt(Provider)) { ["Gateway:MaxRequestBodyBytes"] = "4096" });
        using var http = small.CreateGatewayClient();
        var big = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 10_000) + "\"}]}";

        using var response = await http.PostAsync("v1/chat/completions", Json(big));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Provider_errors_pass_through_with_their_status()
    {
        Provider.RespondError(429, """{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}""");
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal((HttpStatusCode)429, response.StatusCode);
        Assert.Equal("rate_limit_exceeded", (await ErrorOf(response)).GetProperty("code").GetString());
        Assert.Equal(429, (await Matrix.SingleUsageRecordAsync(Gateway)).Status);
    }

    [Theory]
    [InlineData("""{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}""")]   // cut short
    [InlineData("""{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}} {}""")] // trailing data
    [InlineData("""[{"usage":{"prompt_tokens":5}}]""")]                                                      // not an object
    public async Task A_success_whose_body_is_not_one_json_object_gets_502_and_is_recorded(string body)
    {
        Provider.RespondError(200, body);
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_error", (await ErrorOf(response)).GetProperty("code").GetString());
        Assert.Equal(502, (await Matrix.SingleUsageRecordAsync(Gateway)).Status);
    }

    [Fact]
    public async Task Unreachable_provider_gets_502()
    {
        var port = FreePort();
        await using var gateway = new GatewayFactory(new Dictionary<string, string?>
        {
            ["Providers:OpenAI:BaseUrl"] = $"http://127.0.0.1:{port}/v1",
            ["Providers:OpenAI:ApiKey"] = "sk-x",
        });
        using var http = gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_error", (await ErrorOf(response)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Hanging_provider_gets_504_and_the_upstream_call_is_cancelled()
    {
        Provider.RespondHang();
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("upstream_timeout", (await ErrorOf(response)).GetProperty("code").GetString());
        await Provider.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Client_disconnect_cancels_the_upstream_call()
    {
        Provider.RespondHang();
        await using var gateway = new GatewayFactory(GatewayFactory.ProvidersAt(Provider));
        using var http = gateway.CreateGatewayClient();
        using var cts = new CancellationTokenSource();

        var pending = http.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"""), cts.Token);
        await Provider.WaitForCallsAsync(1, TimeSpan.FromSeconds(10));
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await Provider.WaitForCancelledAsync(1, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Stream_dropped_by_the_provider_ends_with_an_error_event()
    {
        Provider.RespondStreamThenDrop(eventsBeforeDrop: 2);
        using var http = Gateway.CreateGatewayClient();

        var raw = await PostRawAsync(http, """{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}""");

        Assert.Contains("\"upstream_error\"", raw);
        Assert.DoesNotContain("[DONE]", raw);
        Assert.Equal(502, (await Matrix.SingleUsageRecordAsync(Gateway)).Status);
    }

    [Fact]
    public async Task Provider_without_a_key_is_not_routable()
    {
        await using var gateway = new GatewayFactory();
        using var http = gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorOf(response);
        Assert.Equal("provider_not_configured", error.GetProperty("code").GetString());
        Assert.Contains("ANTHROPIC_API_KEY", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Provider_prefix_forces_the_provider()
    {
        Provider.RespondDeepSeekText("from deepseek", new OpenAIUsage(10, 2));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json("""{"model":"deepseek/my-custom-model","messages":[{"role":"user","content":"x"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("my-custom-model", Provider.Requests[0].Model);
        Assert.Equal("Bearer sk-upstream-deepseek", Provider.Requests[0].Header("Authorization"));
        Assert.Equal("/chat/completions", Provider.Requests[0].Path);
    }

    internal static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    internal static async Task<string> PostRawAsync(HttpClient http, string body, string path = "v1/chat/completions")
    {
        using var response = await http.PostAsync(path, Json(body));
        return await response.Content.ReadAsStringAsync();
    }

    internal static async Task<JsonElement> ErrorOf(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("error").Clone();
    }

    private static string Header(HttpResponseMessage response, string name) => response.Headers.GetValues(name).Single();

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
