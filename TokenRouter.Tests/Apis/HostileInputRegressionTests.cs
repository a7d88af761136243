using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// The defects hostile testing found (issue 16), each reproduced against the gateway and a fake provider over real HTTP:
/// credentials and hop headers leaking upstream, 500s on odd numbers and surrogates, providers that stall after their
/// headers or stream garbage, failed streams metered as successes, dropped <c>Retry-After</c>, client headers reported
/// as outages, wrong methods forwarded, oversized uploads forwarded before their 413, and bodiless framework errors.
/// </summary>
public sealed class HostileInputRegressionTests : GatewayWithFakeProvider
{
    private const long BodyLimit = 64 * 1024;

    protected override void Configure(Dictionary<string, string?> settings)
    {
        settings["Gateway:ProviderResponseTimeout"] = "00:00:05";
        settings["Gateway:UpstreamIdleTimeout"] = "00:00:01";
        settings["Gateway:MaxRequestBodyBytes"] = BodyLimit.ToString();
    }

    private const string Chat = """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""";

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private HttpRequestMessage Anthropic(string body, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/messages") { Content = Json(body) };
        request.Headers.TryAddWithoutValidation("x-api-key", GatewayFactory.ClientKey);
        request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        return request;
    }

    private async Task<UsageRecord> UsageRecordAsync()
    {
        var sink = Gateway.Service<InMemoryUsageSink>();
        await Eventually.TrueAsync(() => sink.Snapshot().Count > 0, "a usage record");
        return Assert.Single(sink.Snapshot());
    }

    private static async Task<JsonElement> OpenAIErrorAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = doc.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        return error.Clone();
    }

    private static async Task<JsonElement> AnthropicErrorAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("error", doc.RootElement.GetProperty("type").GetString());
        var error = doc.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        return error.Clone();
    }

    // ---- 2: credentials and hop headers -----------------------------------------------------------------

    [Fact]
    public async Task Passthrough_forwards_no_client_credential_cookie_or_forwarding_header()
    {
        Provider.Respond(async (_, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"object":"list","data":[]}""");
        });
        using var http = Gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/embeddings")
        {
            Content = Json("""{"model":"text-embedding-3-small","input":"x"}"""),
        };
        request.Headers.TryAddWithoutValidation("api-key", GatewayFactory.ClientKey);
        request.Headers.TryAddWithoutValidation("Cookie", "session=" + GatewayFactory.ClientKey);
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", "10.1.2.3");
        request.Headers.TryAddWithoutValidation("X-Custom-Secret", "s3cret");
        request.Headers.TryAddWithoutValidation("OpenAI-Beta", "assistants=v2");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = Assert.Single(Provider.Requests);
        Assert.Null(upstream.Header("api-key"));
        Assert.Null(upstream.Header("Cookie"));
        Assert.Null(upstream.Header("X-Forwarded-For"));
        Assert.Null(upstream.Header("X-Custom-Secret"));
        Assert.Equal("assistants=v2", upstream.Header("OpenAI-Beta"));
        Assert.Equal("Bearer sk-upstream-openai", upstream.Header("Authorization"));
        Assert.DoesNotContain(upstream.Headers, h => h.Value.Contains(GatewayFactory.ClientKey, StringComparison.Ordinal));
    }

    // ---- 3 and 4: numbers and surrogates ----------------------------------------------------------------

    [Theory]
    [InlineData("temperature", "1e999")]
    [InlineData("temperature", "-1e400")]
    [InlineData("top_p", "-1e400")]
    [InlineData("top_p", "1e999")]
    public async Task A_non_finite_sampling_number_is_a_400_naming_the_field_in_both_formats(string field, string number)
    {
        using var http = Gateway.CreateGatewayClient();
        using var chat = await http.PostAsync("v1/chat/completions",
            Json($$"""{"model":"gpt-4o","{{field}}":{{number}},"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
        Assert.Equal(field, (await OpenAIErrorAsync(chat)).GetProperty("param").GetString());

        using var messages = await http.SendAsync(Anthropic(
            $$"""{"model":"claude-sonnet-4-5","max_tokens":10,"{{field}}":{{number}},"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, messages.StatusCode);
        Assert.Contains(field, (await AnthropicErrorAsync(messages)).GetProperty("message").GetString());
        Assert.Empty(Provider.Requests);
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","user":"\ud800","messages":[{"role":"user","content":"hi"}]}""", "user")]
    [InlineData("""{"model":"gpt-4o","x_unknown":{"a":["\udfff"]},"messages":[{"role":"user","content":"hi"}]}""", "x_unknown.a[0]")]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi","x_note":"\ud800A"}]}""", "messages[0].x_note")]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"x_part","x_field":"\ud83d"}]}]}""", "messages[0].content[0].x_field")]
    public async Task A_lone_surrogate_in_a_field_passed_on_unchanged_is_a_400_naming_it(string body, string path)
    {
        using var http = Gateway.CreateGatewayClient();
        using var response = await http.PostAsync("v1/chat/completions", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(path, (await OpenAIErrorAsync(response)).GetProperty("param").GetString());
        Assert.Empty(Provider.Requests);
    }

    [Fact]
    public async Task A_lone_surrogate_in_anthropic_metadata_is_a_400_in_anthropic_shape()
    {
        using var http = Gateway.CreateGatewayClient();
        using var response = await http.SendAsync(Anthropic(
            """{"model":"claude-sonnet-4-5","max_tokens":10,"metadata":{"user_id":"\ud800"},"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("metadata.user_id", (await AnthropicErrorAsync(response)).GetProperty("message").GetString());
        Assert.Empty(Provider.Requests);
    }

    // ---- 5: a provider that stalls after its headers ----------------------------------------------------

    [Fact]
    public async Task A_provider_that_stalls_after_its_headers_gets_a_504_and_the_call_is_metered()
    {
        Provider.Respond(async (_, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions", Json(Chat));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("sent nothing", (await OpenAIErrorAsync(response)).GetProperty("message").GetString());
        Assert.Equal(504, (await UsageRecordAsync()).Status);
    }

    [Fact]
    public async Task A_stream_that_stalls_after_some_chunks_ends_with_an_error_event_and_is_metered_as_a_timeout()
    {
        Provider.Respond(async (_, context) =>
        {
            await FakeResponses.StartEventStreamAsync(context);
            await FakeResponses.WriteEventAsync(context, new SseEvent(null,
                """{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"par"}}]}"""));
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions",
            Json("""{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"par\"", text);
        Assert.Contains("\"error\"", text);
        Assert.Contains("sent nothing", text);
        Assert.DoesNotContain("[DONE]", text);
        Assert.Equal(504, (await UsageRecordAsync()).Status);
    }

    [Fact]
    public async Task A_passthrough_provider_that_stalls_after_its_headers_gets_a_504_in_the_clients_shape()
    {
        Provider.Respond(async (_, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/embeddings", Json("""{"model":"text-embedding-3-small","input":"hi"}"""));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("sent nothing", (await OpenAIErrorAsync(response)).GetProperty("message").GetString());
        Assert.Equal(504, (await UsageRecordAsync()).Status);
    }

    [Fact]
    public async Task A_passthrough_stream_that_stalls_midway_is_cut_off_and_metered_as_a_timeout()
    {
        Provider.Respond(async (_, context) =>
        {
            await FakeResponses.StartEventStreamAsync(context);
            await FakeResponses.WriteEventAsync(context, new SseEvent("response.created", """{"type":"response.created"}"""));
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/responses")
        {
            Content = Json("""{"model":"gpt-4o","stream":true,"input":"hi"}"""),
        }, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // The client never sees a truncated stream end cleanly: its connection is cut.
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsStringAsync());
        Assert.Equal(504, (await UsageRecordAsync()).Status);
    }

    [Fact]
    public async Task A_passthrough_stream_the_provider_breaks_off_is_cut_off_and_metered_as_a_failure()
    {
        Provider.RespondStreamThenDrop(eventsBeforeDrop: 2);
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = Json("""{"model":"gpt-4o","stream":true,"prompt":"hi"}"""),
        }, HttpCompletionOption.ResponseHeadersRead);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsStringAsync());
        Assert.Equal(502, (await UsageRecordAsync()).Status);
    }

    // ---- 6 and 7: garbage streams and failed streams are not successes ----------------------------------

    [Fact]
    public async Task Garbage_from_an_openai_provider_reaches_an_anthropic_client_as_an_error_event_not_an_empty_message()
    {
        Provider.Respond(async (_, context) =>
        {
            await FakeResponses.StartEventStreamAsync(context);
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, "this is not json"));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, "<html>still not</html>"));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, "[DONE]"));
        });
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.SendAsync(Anthropic(
            """{"model":"gpt-4o","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Contains("event: error", text);
        Assert.Contains("not valid JSON", text);
        Assert.DoesNotContain("message_stop", text);
        Assert.Equal(502, (await UsageRecordAsync()).Status);
    }

    [Fact]
    public async Task A_stream_the_provider_breaks_off_is_metered_as_a_failure_not_a_2xx()
    {
        Provider.RespondStreamThenDrop(eventsBeforeDrop: 2);
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/chat/completions",
            Json("""{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));
        await response.Content.ReadAsStringAsync();

        Assert.Equal(502, (await UsageRecordAsync()).Status);
    }

    // ---- 9: Retry-After ---------------------------------------------------------------------------------

    [Theory]
    [InlineData("v1/chat/completions", false)] // same format: the provider's body relayed
    [InlineData("v1/messages", true)] // other format: re-rendered in the client's shape
    public async Task A_relayed_429_keeps_the_providers_retry_after(string path, bool anthropicClient)
    {
        Provider.Respond(async (_, context) =>
        {
            context.Response.StatusCode = 429;
            context.Response.Headers.RetryAfter = "7";
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(FakeResponses.OpenAIErrorBody("slow down", "rate_limit_error"));
        });
        using var http = Gateway.CreateGatewayClient();
        using var request = anthropicClient
            ? Anthropic("""{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""")
            : new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(Chat) };

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task A_passthrough_503_re_rendered_in_the_clients_shape_keeps_the_retry_after()
    {
        Provider.Respond(async (_, context) =>
        {
            context.Response.StatusCode = 503;
            context.Response.Headers.RetryAfter = "3";
            context.Response.ContentType = "text/html";
            await context.Response.WriteAsync("<html>busy</html>");
        });
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/embeddings", Json("""{"model":"text-embedding-3-small","input":"x"}"""));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(3), response.Headers.RetryAfter?.Delta);
        await OpenAIErrorAsync(response);
    }

    // ---- 10: a client header is the client's error ------------------------------------------------------

    [Theory]
    [InlineData("anthropic-beta", "caf\u00e9-2025")]
    [InlineData("anthropic-version", "2023-06-01\u0001")]
    public async Task A_header_http_cannot_forward_is_a_400_not_a_provider_outage(string header, string value)
    {
        // The client's own HTTP stack would refuse to send these; the gateway must not rely on every client being as careful.
        using var handler = new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 };
        using var http = new HttpClient(handler) { BaseAddress = Gateway.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/messages")
        {
            Content = Json("""{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        request.Headers.TryAddWithoutValidation("x-api-key", GatewayFactory.ClientKey);
        if (header != "anthropic-version") request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");
        request.Headers.TryAddWithoutValidation(header, value);

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(header, (await AnthropicErrorAsync(response)).GetProperty("message").GetString());
        Assert.Empty(Provider.Requests);
    }

    // ---- 11: methods, upload limits, framework errors ---------------------------------------------------

    [Theory]
    [InlineData("GET", "v1/chat/completions")]
    [InlineData("PUT", "v1/chat/completions")]
    [InlineData("DELETE", "v1/chat/completions")]
    [InlineData("GET", "v1/messages")]
    [InlineData("PATCH", "v1/messages")]
    public async Task Other_methods_on_the_chat_endpoints_are_405_and_never_forwarded(string method, string path)
    {
        using var http = Gateway.CreateGatewayClient();
        using var response = await http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("POST", response.Content.Headers.Allow);
        if (path.EndsWith("messages", StringComparison.Ordinal)) await AnthropicErrorAsync(response);
        else await OpenAIErrorAsync(response);
        Assert.Empty(Provider.Requests);
    }

    [Fact]
    public async Task Head_on_chat_completions_is_405_and_never_forwarded()
    {
        using var http = Gateway.CreateGatewayClient();
        using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "v1/chat/completions"));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Empty(Provider.Requests);
    }

    [Fact]
    public async Task An_oversized_chunked_upload_is_refused_before_any_byte_reaches_the_provider()
    {
        using var http = Gateway.CreateGatewayClient();
        var payload = new byte[BodyLimit * 4];
        using var content = new StreamContent(new MemoryStream(payload)); // no length: sent chunked
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/files") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        await OpenAIErrorAsync(response);
        Assert.Empty(Provider.Requests);
    }

    [Fact]
    public async Task A_chunked_upload_within_the_limit_is_forwarded_whole()
    {
        Provider.Respond(async (_, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"file-1","object":"file"}""");
        });
        using var http = Gateway.CreateGatewayClient();
        var payload = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
        using var content = new StreamContent(new MemoryStream(payload));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/files") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(payload, Assert.Single(Provider.Requests).Body);
    }

    [Theory]
    [InlineData("nothing-here", false)]
    [InlineData("v2/chat/completions", false)]
    [InlineData("nothing-here", true)]
    public async Task A_path_nothing_maps_gets_a_404_in_the_clients_shape(string path, bool anthropicClient)
    {
        using var http = Gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (anthropicClient) request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        if (anthropicClient) await AnthropicErrorAsync(response);
        else await OpenAIErrorAsync(response);
    }
}
