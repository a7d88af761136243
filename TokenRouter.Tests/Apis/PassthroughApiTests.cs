using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using OpenAI;
using OpenAI.Embeddings;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// Every other <c>/v1/*</c> request is passed through to a provider unchanged: driven by the official OpenAI SDK and raw
/// HTTP against the fake provider over real HTTP.
/// </summary>
public sealed class PassthroughApiTests : GatewayWithFakeProvider
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly float[] Vector = [0.25f, -0.5f, 0.125f, 1f];

    protected override void Configure(Dictionary<string, string?> settings)
    {
        foreach (var (key, value) in Settings(Provider)) settings[key] = value;
    }

    private static Dictionary<string, string?> Settings(FakeProvider provider)
    {
        var settings = GatewayFactory.ProvidersAt(provider);
        settings["Gateway:ProviderResponseTimeout"] = "00:00:02";
        return settings;
    }

    private IReadOnlyList<UsageRecord> Usage => Gateway.Service<InMemoryUsageSink>().Snapshot();

    /// <summary>The usage records once there are <paramref name="expected"/>: a request is metered as its handler ends,
    /// which can be a moment after its client has read the whole response.</summary>
    private async Task<IReadOnlyList<UsageRecord>> UsageAsync(int expected = 1)
    {
        await Eventually.TrueAsync(() => Usage.Count >= expected, $"{expected} usage record(s)");
        return Usage;
    }

    [Fact]
    public async Task Embeddings_reach_the_provider_with_its_key_and_are_metered()
    {
        Provider.Respond(Embeddings(promptTokens: 8));
        var client = new EmbeddingClient("text-embedding-3-small", new ApiKeyCredential(GatewayFactory.ClientKey),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1") });

        OpenAIEmbedding embedding = await client.GenerateEmbeddingAsync("The quick brown fox");

        Assert.Equal(Vector, embedding.ToFloats().ToArray());
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("POST", upstream.Method);
        Assert.Equal("/v1/embeddings", upstream.Path);
        Assert.Equal("Bearer sk-upstream-openai", upstream.Header("Authorization"));
        Assert.Equal("text-embedding-3-small", upstream.Model);
        Assert.DoesNotContain(upstream.Headers.Values, v => v.Contains(GatewayFactory.ClientKey, StringComparison.Ordinal));

        var record = Assert.Single(await UsageAsync());
        Assert.Equal("openai", record.Provider);
        Assert.Equal("text-embedding-3-small", record.Model);
        Assert.Equal(200, record.Status);
        Assert.Equal(new Usage(8, 0, 0, 0, 0), record.Usage);
        Assert.Equal(8 * 0.02m / 1_000_000m, record.CostUsd);
        Assert.False(record.Unpriced);
        Assert.StartsWith("static-", record.KeyId, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Routed_model_name_is_rewritten_and_the_rest_of_the_body_is_forwarded_byte_for_byte()
    {
        Provider.Respond(Json(200, """{"id":"modr-1","results":[{"flagged":false}]}"""));
        using var http = Gateway.CreateGatewayClient();
        const string body = """{ "input" : ["a", "b"], "model":"openai/omni-moderation-latest",  "x_extra": {"n": 1.50} }""";

        using var response = await http.PostAsync("v1/moderations", ChatCompletionsApiTests.Json(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"id":"modr-1","results":[{"flagged":false}]}""", await response.Content.ReadAsStringAsync());
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("/v1/moderations", upstream.Path);
        Assert.Equal(body.Replace("openai/omni-moderation-latest", "omni-moderation-latest", StringComparison.Ordinal), upstream.BodyText);
        var record = Assert.Single(await UsageAsync());
        Assert.Equal("omni-moderation-latest", record.Model);
        Assert.True(record.Usage.IsEmpty);
        Assert.Equal(0m, record.CostUsd); // no tokens reported: nothing to bill, nothing flagged
    }

    [Fact]
    public async Task Get_with_a_query_string_reaches_the_default_provider_and_is_recorded()
    {
        Provider.Respond(Json(200, """{"object":"list","data":[{"id":"file-abc","object":"file"}],"has_more":false}"""));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.GetAsync("v1/files?purpose=batch&limit=2");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("file-abc", await response.Content.ReadAsStringAsync());
        Assert.Equal("openai", response.Headers.GetValues("x-tokenrouter-provider").Single());
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("GET", upstream.Method);
        Assert.Equal("/v1/files", upstream.Path);
        Assert.Equal("?purpose=batch&limit=2", upstream.QueryString);
        Assert.Equal("Bearer sk-upstream-openai", upstream.Header("Authorization"));
        Assert.Empty(upstream.Body);

        var record = Assert.Single(await UsageAsync());
        Assert.Equal(response.Headers.GetValues("x-request-id").Single(), record.RequestId);
        Assert.Equal("(files)", record.Model);
        Assert.Equal(200, record.Status);
    }

    [Fact]
    public async Task Multipart_upload_is_streamed_to_the_provider_unchanged()
    {
        Provider.Respond(Json(200, """{"id":"file-xyz","object":"file","purpose":"batch"}"""));
        using var http = Gateway.CreateGatewayClient();
        using var form = new MultipartFormDataContent("tr-boundary-42")
        {
            { new StringContent("batch"), "purpose" },
            { new ByteArrayContent(Encoding.UTF8.GetBytes("{\"custom_id\":\"1\"}\n")), "file", "batch.jsonl" },
        };
        var sent = await form.ReadAsByteArrayAsync();

        using var response = await http.PostAsync("v1/files", form);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("multipart/form-data; boundary=\"tr-boundary-42\"", upstream.Header("Content-Type"));
        Assert.Equal(sent, upstream.Body);
        Assert.Equal("(files)", Assert.Single(await UsageAsync()).Model);
    }

    [Fact]
    public async Task Path_whose_last_segment_has_a_dot_is_passed_through_too()
    {
        Provider.Respond(Json(200, """{"id":"gpt-4.1","object":"model"}"""));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.GetAsync("v1/models/gpt-4.1");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("/v1/models/gpt-4.1", Assert.Single(Provider.Requests).Path);
    }

    [Fact]
    public async Task Provider_header_picks_the_provider_and_is_not_forwarded()
    {
        Provider.Respond(Json(200, """{"is_available":true,"balance_infos":[]}"""));
        using var http = Gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/user/balance");
        request.Headers.Add("x-tokenrouter-provider", "deepseek");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("/user/balance", upstream.Path); // DeepSeek's base URL is its API root, as for chat
        Assert.Equal("Bearer sk-upstream-deepseek", upstream.Header("Authorization"));
        Assert.DoesNotContain(upstream.Headers.Keys, h => h.StartsWith("x-tokenrouter-", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("deepseek", Assert.Single(await UsageAsync()).Provider);
    }

    [Fact]
    public async Task Anthropic_count_tokens_reaches_anthropic_with_its_key_and_is_not_billed()
    {
        Provider.Respond(Json(200, """{"input_tokens":1234}"""));
        using var http = Gateway.CreateGatewayClient(key: null);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/messages/count_tokens")
        {
            Content = ChatCompletionsApiTests.Json("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}]}"""),
        };
        request.Headers.Add("x-api-key", GatewayFactory.ClientKey);
        request.Headers.Add("anthropic-version", "2023-06-01");
        request.Headers.Add("anthropic-beta", "token-counting-2024-11-01");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"input_tokens":1234}""", await response.Content.ReadAsStringAsync());
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("/v1/messages/count_tokens", upstream.Path);
        Assert.Equal("sk-upstream-anthropic", upstream.Header("x-api-key"));
        Assert.Equal("2023-06-01", upstream.Header("anthropic-version"));
        Assert.Equal("token-counting-2024-11-01", upstream.Header("anthropic-beta"));
        Assert.Null(upstream.Header("Authorization"));
        var record = Assert.Single(await UsageAsync());
        Assert.Equal("anthropic", record.Provider);
        Assert.True(record.Usage.IsEmpty, "counted tokens are not used tokens");
        Assert.Equal(0m, record.CostUsd);
    }

    [Fact]
    public async Task Reading_a_stored_response_does_not_bill_its_usage_again()
    {
        Provider.Respond(Json(200, """{"id":"resp_1","object":"response","model":"gpt-4o","usage":{"input_tokens":900,"output_tokens":40}}"""));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.GetAsync("v1/responses/resp_1");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var record = Assert.Single(await UsageAsync());
        Assert.Equal("(responses)", record.Model);
        Assert.True(record.Usage.IsEmpty, "the run was billed when it was made");
        Assert.Equal(0m, record.CostUsd);
    }

    [Fact]
    public async Task Responses_api_usage_is_read_from_input_and_output_tokens()
    {
        Provider.Respond(Json(200, """{"id":"resp_2","object":"response","model":"gpt-4o","usage":{"input_tokens":2000,"input_tokens_details":{"cached_tokens":1024},"output_tokens":10,"total_tokens":2010}}"""));
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/responses", ChatCompletionsApiTests.Json("""{"model":"gpt-4o","input":"Hello"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var record = Assert.Single(await UsageAsync());
        Assert.Equal(new Usage(2000, 1024, 0, 0, 10), record.Usage);
        // gpt-4o: 976 × $2.50 + 1024 × $1.25 + 10 × $10 per 1M tokens.
        Assert.Equal((976 * 2.50m + 1024 * 1.25m + 10 * 10m) / 1_000_000m, record.CostUsd);
    }

    [Fact]
    public async Task Event_stream_is_relayed_chunk_by_chunk_and_its_usage_is_metered()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Provider.Respond(async (_, context) =>
        {
            await FakeResponses.StartEventStreamAsync(context);
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, """{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"Hel"}]}"""));
            await release.Task.WaitAsync(context.RequestAborted);
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, """{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"lo"}]}"""));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, """{"id":"cmpl-1","object":"text_completion","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"""));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, "[DONE]"));
        });
        using var http = Gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = ChatCompletionsApiTests.Json("""{"model":"gpt-4o-mini","prompt":"Hi","stream":true,"stream_options":{"include_usage":true}}"""),
        };
        using var cts = new CancellationTokenSource(Timeout);

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        var first = await reader.ReadLineAsync(cts.Token);

        Assert.Contains("\"Hel\"", first);
        Assert.False(Provider.Requests[0].Completed, "the first chunk arrived while the provider was still streaming");
        release.SetResult();
        var rest = await reader.ReadToEndAsync(cts.Token);
        Assert.Contains("\"lo\"", rest);
        Assert.EndsWith("data: [DONE]\n\n", rest);

        var record = Assert.Single(await UsageAsync());
        Assert.True(record.Stream);
        Assert.Equal(new Usage(5, 0, 0, 0, 2), record.Usage);
        Assert.Equal((5 * 0.15m + 2 * 0.60m) / 1_000_000m, record.CostUsd); // gpt-4o-mini list price
    }

    [Fact]
    public async Task Client_credentials_are_never_forwarded_upstream()
    {
        Provider.Respond(Json(200, """{"object":"list","data":[]}"""));
        using var http = Gateway.CreateGatewayClient();
        using var openAIRequest = new HttpRequestMessage(HttpMethod.Get, "v1/vector_stores");
        openAIRequest.Headers.Add("x-tokenrouter-note", "gateway-only");
        openAIRequest.Headers.Add("OpenAI-Beta", "assistants=v2");
        await (await http.SendAsync(openAIRequest)).Content.ReadAsStringAsync();

        using var anthropicClient = Gateway.CreateGatewayClient(key: null);
        using var anthropicRequest = new HttpRequestMessage(HttpMethod.Get, "v1/messages/batches");
        anthropicRequest.Headers.Add("x-api-key", GatewayFactory.ClientKey);
        await (await anthropicClient.SendAsync(anthropicRequest)).Content.ReadAsStringAsync();

        Assert.Equal(2, Provider.CallCount);
        var toOpenAI = Provider.Requests[0];
        var toAnthropic = Provider.Requests[1];
        Assert.Equal("Bearer sk-upstream-openai", toOpenAI.Header("Authorization"));
        Assert.Null(toOpenAI.Header("x-api-key"));
        Assert.Null(toOpenAI.Header("x-tokenrouter-note"));
        Assert.Equal("assistants=v2", toOpenAI.Header("OpenAI-Beta")); // other headers pass unchanged
        Assert.Equal("/v1/messages/batches", toAnthropic.Path);
        Assert.Equal("sk-upstream-anthropic", toAnthropic.Header("x-api-key"));
        Assert.Equal("2023-06-01", toAnthropic.Header("anthropic-version")); // the adapter's default
        Assert.Null(toAnthropic.Header("Authorization"));
        foreach (var upstream in Provider.Requests)
        {
            Assert.DoesNotContain(upstream.Headers.Values, v => v.Contains(GatewayFactory.ClientKey, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Concurrency_limit_applies_to_passthrough_requests()
    {
        var settings = Settings(Provider);
        settings["Limits:GlobalConcurrent"] = "1";
        await using var gateway = new GatewayFactory(settings);
        using var http = gateway.CreateGatewayClient();
        Provider.Respond(Json(200, """{"object":"list","data":[]}"""));
        Provider.CloseGate();

        var held = http.GetAsync("v1/files");
        await Provider.WaitForWaitingAtGateAsync(1, Timeout);
        using (var refused = await http.GetAsync("v1/files"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Equal("concurrency_limit_exceeded", (await ChatCompletionsApiTests.ErrorOf(refused)).GetProperty("code").GetString());
        }
        Provider.OpenGate();

        using var admitted = await held;
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        Assert.Equal(1, Provider.CallCount);
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    /// <summary>OpenAI's embeddings answer for every input, as floats or (what the .NET SDK asks for) base64 float32.</summary>
    private static Func<RecordedRequest, HttpContext, Task> Embeddings(int promptTokens) => (request, context) =>
    {
        var json = request.Json!.Value;
        var inputs = json.GetProperty("input").ValueKind == JsonValueKind.Array ? json.GetProperty("input").GetArrayLength() : 1;
        var base64 = json.TryGetProperty("encoding_format", out var f) && f.GetString() == "base64";
        var data = new JsonArray();
        for (var i = 0; i < inputs; i++)
        {
            JsonNode vector = base64
                ? JsonValue.Create(Convert.ToBase64String(Vector.SelectMany(BitConverter.GetBytes).ToArray()))
                : new JsonArray(Vector.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
            data.Add(new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = vector });
        }
        var body = new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = request.Model,
            ["usage"] = new JsonObject { ["prompt_tokens"] = promptTokens, ["total_tokens"] = promptTokens },
        };
        return Json(200, body.ToJsonString())(request, context);
    };

    private static Func<RecordedRequest, HttpContext, Task> Json(int status, string body) => FakeResponses.Error(status, body);
}
