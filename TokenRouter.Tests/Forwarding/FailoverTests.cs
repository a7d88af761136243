using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using Microsoft.AspNetCore.Http;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Forwarding;

/// <summary>
/// Two deployments per provider over real HTTP: "bad" (weighted to be tried first) fails the way a broken key or host
/// does, "good" answers. Clients are the official SDKs, which must never notice.
/// </summary>
public sealed class FailoverTests : GatewayWithFakeProvider
{
    private const string BadOpenAI = "sk-bad-openai-0123456789", GoodOpenAI = "sk-good-openai-0123456789";
    private const string BadAnthropic = "sk-ant-bad-0123456789", GoodAnthropic = "sk-ant-good-0123456789";

    public enum Fault
    {
        Reset,
        Hang,
        RateLimitedWithRetryAfter,
        Unavailable503,
        Unauthorized401,
    }

    protected override void Configure(Dictionary<string, string?> settings)
    {
        foreach (var (provider, bad, good, url) in new[]
        {
            ("OpenAI", BadOpenAI, GoodOpenAI, Provider.OpenAIBaseUrl.ToString()),
            ("Anthropic", BadAnthropic, GoodAnthropic, Provider.AnthropicBaseUrl.ToString()),
        })
        {
            settings[$"Providers:{provider}:ApiKey"] = null;
            // The fuller form; a huge weight makes "bad" the first choice of (practically) every prefix.
            settings[$"Providers:{provider}:Deployments:0:Name"] = $"{provider.ToLowerInvariant()}-bad";
            settings[$"Providers:{provider}:Deployments:0:ApiKey"] = bad;
            settings[$"Providers:{provider}:Deployments:0:Weight"] = "1000000";
            settings[$"Providers:{provider}:Deployments:1:Name"] = $"{provider.ToLowerInvariant()}-good";
            settings[$"Providers:{provider}:Deployments:1:ApiKey"] = good;
            settings[$"Providers:{provider}:BaseUrl"] = url;
        }
        // A hanging deployment is given up after this long (the seed-style alias of Gateway:ProviderResponseTimeout).
        settings["UPSTREAM_FIRST_BYTE_TIMEOUT"] = "1s";
    }

    internal static string? KeyOf(RecordedRequest r) =>
        r.Header("x-api-key") ?? r.Header("Authorization")?["Bearer ".Length..];

    private static Func<RecordedRequest, HttpContext, Task> Failing(Fault fault) => fault switch
    {
        Fault.Reset => (_, context) =>
        {
            context.Abort();
            return Task.CompletedTask;
        }
        ,
        Fault.Hang => FakeResponses.Hang(),
        Fault.RateLimitedWithRetryAfter => (r, context) =>
        {
            context.Response.Headers.RetryAfter = "30";
            return FakeResponses.Error(429, FakeResponses.OpenAIErrorBody("slow down", "rate_limit_error"))(r, context);
        }
        ,
        Fault.Unavailable503 => FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("overloaded")),
        _ => FakeResponses.Error(401, FakeResponses.OpenAIErrorBody("Incorrect API key provided: " + BadOpenAI, "invalid_request_error", "invalid_api_key")),
    };

    /// <summary>The bad keys fail with <paramref name="fault"/>; every other request gets a normal answer.</summary>
    private void BadKeysFail(Fault fault)
    {
        var failing = Failing(fault);
        var normal = FakeResponses.Auto();
        Provider.Respond((r, context) => KeyOf(r) is BadOpenAI or BadAnthropic ? failing(r, context) : normal(r, context));
    }

    private int CallsWith(string key) => Provider.Requests.Count(r => KeyOf(r) == key);

    private ChatClient OpenAIChat(string model = "gpt-4o-mini") =>
        new(model, new ApiKeyCredential(GatewayFactory.ClientKey),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    private AnthropicClient AnthropicSdk() =>
        new() { ApiKey = GatewayFactory.ClientKey, BaseUrl = Gateway.BaseAddress.ToString().TrimEnd('/'), MaxRetries = 0 };

    private async Task<string> AskAsync(bool anthropic, bool stream, string question)
    {
        if (anthropic)
        {
            var request = new MessageCreateParams { Model = "claude-haiku-4-5", MaxTokens = 64, Messages = [new UserMessageParam(question)] };
            var message = stream ? await AnthropicSdk().Messages.CreateStreaming(request).Aggregate() : await AnthropicSdk().Messages.Create(request);
            return string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : ""));
        }
        if (!stream) return (await OpenAIChat().CompleteChatAsync([new UserChatMessage(question)])).Value.Content[0].Text;
        var text = "";
        await foreach (var update in OpenAIChat().CompleteChatStreamingAsync([new UserChatMessage(question)]))
            text += string.Concat(update.ContentUpdate.Select(p => p.Text));
        return text;
    }

    public static TheoryData<Fault, bool, bool> Faults()
    {
        var data = new TheoryData<Fault, bool, bool>();
        foreach (var fault in Enum.GetValues<Fault>())
        {
            foreach (var anthropic in new[] { false, true })
            {
                foreach (var stream in new[] { false, true }) data.Add(fault, anthropic, stream);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Faults))]
    public async Task A_failing_deployment_is_failed_over_before_the_first_byte_and_then_cooled_down(Fault fault, bool anthropic, bool stream)
    {
        BadKeysFail(fault);
        var (bad, good) = anthropic ? (BadAnthropic, GoodAnthropic) : (BadOpenAI, GoodOpenAI);

        for (var i = 0; i < 5; i++)
            Assert.Equal(FakeResponses.DefaultText, await AskAsync(anthropic, stream, $"Question {i}"));

        // A 401 or a 429 with Retry-After takes the key out at once; other failures after three in a row (FailureThreshold).
        var expectedBadCalls = fault is Fault.Unauthorized401 or Fault.RateLimitedWithRetryAfter ? 1 : 3;
        Assert.Equal(expectedBadCalls, CallsWith(bad));
        Assert.Equal(5, CallsWith(good));
        var deployment = await DeploymentAsync(anthropic ? "anthropic-bad" : "openai-bad");
        Assert.Equal("cooling_down", deployment.GetProperty("health").GetString());
        Assert.NotEqual(JsonValueKind.Null, deployment.GetProperty("cooldown_until").ValueKind);
        Assert.Equal("healthy", (await DeploymentAsync(anthropic ? "anthropic-good" : "openai-good")).GetProperty("health").GetString());

        // One usage record per request, from the deployment that answered.
        await Eventually.TrueAsync(() => Gateway.Service<InMemoryUsageSink>().Snapshot().Count == 5, "five usage records");
        Assert.All(Gateway.Service<InMemoryUsageSink>().Snapshot(), r => Assert.Equal(200, r.Status));
    }

    [Fact]
    public async Task The_deployments_endpoint_lists_ids_and_health_but_never_a_key()
    {
        using var client = Gateway.CreateGatewayClient();
        var text = await client.GetStringAsync("v1/tokenrouter/deployments");

        foreach (var id in new[] { "openai-bad", "openai-good", "anthropic-bad", "anthropic-good" }) Assert.Contains($"\"{id}\"", text);
        foreach (var key in new[] { BadOpenAI, GoodOpenAI, BadAnthropic, GoodAnthropic, "sk-upstream-deepseek" }) Assert.DoesNotContain(key, text);
        Assert.DoesNotContain(Provider.BaseUrl.Authority, text);
    }

    [Fact]
    public async Task A_key_echoed_in_a_401_never_reaches_the_client_even_when_every_deployment_fails()
    {
        var error = FakeResponses.OpenAIErrorBody("Incorrect API key provided: " + BadOpenAI + " and " + GoodOpenAI, "invalid_request_error", "invalid_api_key");
        Provider.RespondError(401, error);
        using var client = Gateway.CreateGatewayClient();

        using var response = await client.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"""));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(2, Provider.CallCount); // each key once, never the same revoked key again
        Assert.DoesNotContain(BadOpenAI, body);
        Assert.DoesNotContain(GoodOpenAI, body);
    }

    [Theory]
    [InlineData(400)]
    [InlineData(404)]
    [InlineData(413)]
    [InlineData(422)]
    public async Task A_client_error_is_never_retried(int status)
    {
        Provider.RespondError(status, FakeResponses.OpenAIErrorBody("your request is wrong", "invalid_request_error"));
        using var client = Gateway.CreateGatewayClient();

        using var response = await client.PostAsync("v1/chat/completions", Json("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal((HttpStatusCode)status, response.StatusCode);
        Assert.Equal(1, Provider.CallCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_stream_that_drops_after_its_first_byte_is_not_retried_and_ends_in_an_error_event_in_the_clients_format(bool anthropic)
    {
        Provider.RespondStreamThenDrop(2);
        using var client = Gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, anthropic ? "v1/messages" : "v1/chat/completions")
        {
            Content = Json(anthropic
                ? """{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"""
                : """{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        if (anthropic) request.Headers.Add("anthropic-version", "2023-06-01");

        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, Provider.CallCount);
        Assert.Contains(anthropic ? "event: error" : "data: {\"error\"", body);
        Assert.DoesNotContain(anthropic ? "message_stop" : "[DONE]", body);
        await Eventually.TrueAsync(() => Gateway.Service<InMemoryUsageSink>().Snapshot().Count == 1, "the broken stream's usage record");
        var record = Assert.Single(Gateway.Service<InMemoryUsageSink>().Snapshot());
        Assert.Equal(502, record.Status); // recorded (and billed for whatever usage the provider reported) as before routing
    }

    [Theory]
    [InlineData(Fault.Reset)]
    [InlineData(Fault.Hang)]
    [InlineData(Fault.RateLimitedWithRetryAfter)]
    [InlineData(Fault.Unavailable503)]
    [InlineData(Fault.Unauthorized401)]
    public async Task A_passthrough_request_with_a_json_body_fails_over_before_the_first_byte(Fault fault)
    {
        BadKeysFail(fault);
        using var client = Gateway.CreateGatewayClient();

        using var response = await client.PostAsync("v1/embeddings", Json("""{"model":"text-embedding-3-small","input":"The quick brown fox"}"""));

        // The gateway read the body for its model, so it can send it again: the next deployment answers.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain(BadOpenAI, await response.Content.ReadAsStringAsync());
        Assert.Equal(1, CallsWith(BadOpenAI));
        Assert.Equal(1, CallsWith(GoodOpenAI));
        var good = Provider.Requests.Single(r => KeyOf(r) == GoodOpenAI);
        Assert.Contains("The quick brown fox", System.Text.Encoding.UTF8.GetString(good.Body));
        // A 401 or a 429 with Retry-After takes the key out at once; other failures count towards the threshold.
        Assert.Equal(fault is Fault.Unauthorized401 or Fault.RateLimitedWithRetryAfter ? "cooling_down" : "degraded",
            (await DeploymentAsync("openai-bad")).GetProperty("health").GetString());
        await Eventually.TrueAsync(() => Gateway.Service<InMemoryUsageSink>().Snapshot().Count == 1, "the request's usage record");
        Assert.Equal(200, Assert.Single(Gateway.Service<InMemoryUsageSink>().Snapshot()).Status); // one record, of the answer
    }

    [Fact]
    public async Task A_passthrough_body_streamed_through_is_not_retried_but_the_next_request_skips_the_deployment_it_cooled_down()
    {
        BadKeysFail(Fault.Unauthorized401);
        using var client = Gateway.CreateGatewayClient();
        static HttpContent Upload() => new ByteArrayContent("not json, streamed through"u8.ToArray())
        {
            Headers = { ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream") },
        };

        using var first = await client.PostAsync("v1/files", Upload());
        using var second = await client.PostAsync("v1/files", Upload());

        // A body of declared length that is not JSON goes straight through, once: the bad key's own answer (its key
        // redacted) reaches the client, and the key cooled down for the next request.
        Assert.Equal(HttpStatusCode.Unauthorized, first.StatusCode);
        Assert.DoesNotContain(BadOpenAI, await first.Content.ReadAsStringAsync());
        Assert.Equal(1, CallsWith(BadOpenAI));
        Assert.NotEqual(HttpStatusCode.Unauthorized, second.StatusCode);
        Assert.Equal(1, CallsWith(GoodOpenAI));
        Assert.Equal("cooling_down", (await DeploymentAsync("openai-bad")).GetProperty("health").GetString());
    }

    private async Task<JsonElement> DeploymentAsync(string id)
    {
        using var client = Gateway.CreateGatewayClient();
        using var doc = JsonDocument.Parse(await client.GetStringAsync("v1/tokenrouter/deployments"));
        return doc.RootElement.GetProperty("data").EnumerateArray().Single(d => d.GetProperty("id").GetString() == id).Clone();
    }

    private static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");
}
