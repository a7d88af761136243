using System.Net;
using System.Text;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Routing;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>
/// Two deployments per provider with <c>MaxConcurrency = 1</c> over real HTTP: "a" (weighted to be every prefix's first
/// choice) and "b". Requests to "a" are held at the fake provider until the test lets them go, so its slot stays taken;
/// a request meanwhile goes to "b", and with both taken the client gets a 429 with <c>Retry-After: 1</c> in its own format.
/// </summary>
public sealed class DeploymentConcurrencyTests : GatewayWithFakeProvider
{
    private const string KeyA = "sk-conc-a-0123456789", KeyB = "sk-conc-b-0123456789";
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HashSet<string> _held = new(StringComparer.Ordinal);

    protected override void Configure(Dictionary<string, string?> settings)
    {
        foreach (var provider in new[] { "OpenAI", "Anthropic" })
        {
            settings[$"Providers:{provider}:ApiKey"] = null;
            settings[$"Providers:{provider}:Deployments:0:Name"] = $"{provider.ToLowerInvariant()}-a";
            settings[$"Providers:{provider}:Deployments:0:ApiKey"] = KeyA;
            settings[$"Providers:{provider}:Deployments:0:Weight"] = "1000000";
            settings[$"Providers:{provider}:Deployments:0:MaxConcurrency"] = "1";
            settings[$"Providers:{provider}:Deployments:1:Name"] = $"{provider.ToLowerInvariant()}-b";
            settings[$"Providers:{provider}:Deployments:1:ApiKey"] = KeyB;
            settings[$"Providers:{provider}:Deployments:1:MaxConcurrency"] = "1";
        }
    }

    /// <summary>Requests with one of <paramref name="keys"/> wait until <see cref="_release"/>; every request is then answered normally.</summary>
    private void Hold(params string[] keys)
    {
        _held.UnionWith(keys);
        var normal = FakeResponses.Auto();
        Provider.Respond(async (r, context) =>
        {
            if (_held.Contains(FailoverTests.KeyOf(r) ?? "")) await _release.Task.WaitAsync(context.RequestAborted);
            await normal(r, context);
        });
    }

    private int InFlight(string id) => Gateway.Service<DeploymentConcurrencyLimiter>().InFlight(id);

    private static StringContent Chat(string question, bool stream = false) => ChatCompletionsApiTests.Json(
        $$"""{"model":"gpt-4o-mini","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"{{question}}"}]}""");

    private static StringContent Messages(string question) => ChatCompletionsApiTests.Json(
        $$"""{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"{{question}}"}]}""");

    [Fact]
    public async Task A_deployment_at_its_cap_hands_the_next_request_to_the_next_deployment()
    {
        Hold(KeyA);
        using var client = Gateway.CreateGatewayClient();

        var first = client.PostAsync("v1/chat/completions", Chat("first question"));
        await Provider.WaitForCallsAsync(1, TimeSpan.FromSeconds(30));
        Assert.Equal(KeyA, FailoverTests.KeyOf(Provider.Requests[0]));
        Assert.Equal(1, InFlight("openai-a"));

        using (var second = await client.PostAsync("v1/chat/completions", Chat("second question")))
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(KeyB, FailoverTests.KeyOf(Provider.Requests[1]));

        _release.SetResult();
        using (var answered = await first)
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        await Eventually.TrueAsync(() => InFlight("openai-a") == 0 && InFlight("openai-b") == 0, "both slots given back");
    }

    [Theory]
    [InlineData("v1/chat/completions")]
    [InlineData("v1/messages")]
    public async Task Every_deployment_at_its_cap_is_a_429_in_the_clients_shape_with_retry_after_1_and_a_usage_record(string path)
    {
        var anthropic = path == "v1/messages";
        StringContent Ask(string question) => anthropic ? Messages(question) : Chat(question);
        Hold(KeyA, KeyB);
        using var client = Gateway.CreateGatewayClient();
        var a = client.PostAsync(path, Ask("question one"));
        await Provider.WaitForCallsAsync(1, TimeSpan.FromSeconds(30));
        var b = client.PostAsync(path, Ask("question two"));
        await Provider.WaitForCallsAsync(2, TimeSpan.FromSeconds(30));

        using (var refused = await client.PostAsync(path, Ask("question three")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
            using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            var e = error.RootElement.GetProperty("error");
            Assert.Equal("rate_limit_error", e.GetProperty("type").GetString());
            if (anthropic) Assert.Equal("error", error.RootElement.GetProperty("type").GetString());
            else Assert.Equal("deployments_saturated", e.GetProperty("code").GetString());
        }
        Assert.Equal(2, Provider.CallCount); // the refused request was never sent
        await Eventually.TrueAsync(() => Gateway.Service<InMemoryUsageSink>().Snapshot().Any(r => r.Status == 429),
            "the refused request's usage record");

        _release.SetResult();
        using (var answeredA = await a) Assert.Equal(HttpStatusCode.OK, answeredA.StatusCode);
        using (var answeredB = await b) Assert.Equal(HttpStatusCode.OK, answeredB.StatusCode);
    }

    [Fact]
    public async Task The_slot_is_given_back_when_a_streamed_response_completes()
    {
        using var client = Gateway.CreateGatewayClient();
        using (var streamed = await client.PostAsync("v1/chat/completions", Chat("stream this", stream: true)))
        {
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            Assert.Contains("[DONE]", await streamed.Content.ReadAsStringAsync());
        }
        Assert.Equal(KeyA, FailoverTests.KeyOf(Provider.Requests[0]));

        await Eventually.TrueAsync(() => InFlight("openai-a") == 0, "the stream's slot given back");
        using (var next = await client.PostAsync("v1/chat/completions", Chat("next question")))
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(KeyA, FailoverTests.KeyOf(Provider.Requests[1]));
    }

    [Fact]
    public async Task The_slot_is_held_while_a_stream_runs_and_given_back_when_the_client_aborts_it()
    {
        // Deployment a sends the first event of its stream, then nothing until the gateway gives up on it.
        var normal = FakeResponses.Auto();
        Provider.Respond(async (r, context) =>
        {
            if (FailoverTests.KeyOf(r) != KeyA || !r.BodyText.Contains("abort me", StringComparison.Ordinal))
            {
                await normal(r, context);
                return;
            }
            await FakeResponses.StartEventStreamAsync(context);
            var events = FakeResponses.BuildOpenAITextStream("hello there", new OpenAIUsage(10, 2), includeUsage: true);
            await FakeResponses.WriteEventAsync(context, events[0]);
            await Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);
        });
        using var client = Gateway.CreateGatewayClient();
        using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Chat("abort me", stream: true) })
        using (var streaming = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, streaming.StatusCode);
            await using var body = await streaming.Content.ReadAsStreamAsync();
            var buffer = new byte[4096];
            var read = await body.ReadAsync(buffer);
            Assert.Contains("data:", Encoding.UTF8.GetString(buffer, 0, read));

            // Mid-stream the slot is taken: another request goes to b.
            Assert.Equal(1, InFlight("openai-a"));
            using (var meanwhile = await client.PostAsync("v1/chat/completions", Chat("meanwhile")))
                Assert.Equal(HttpStatusCode.OK, meanwhile.StatusCode);
            Assert.Equal(KeyB, FailoverTests.KeyOf(Provider.Requests[1]));
        } // the client leaves mid-stream

        await Provider.WaitForCancelledAsync(1, TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(() => InFlight("openai-a") == 0, "the aborted stream's slot given back");
        using (var next = await client.PostAsync("v1/chat/completions", Chat("after the abort")))
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(KeyA, FailoverTests.KeyOf(Provider.Requests[^1]));
    }

    [Fact]
    public async Task A_passthrough_request_respects_the_cap_and_is_refused_when_every_deployment_is_at_it()
    {
        Hold(KeyA, KeyB);
        using var client = Gateway.CreateGatewayClient();
        static StringContent Embedding(string input) =>
            ChatCompletionsApiTests.Json($$"""{"model":"text-embedding-3-small","input":"{{input}}"}""");

        var a = client.PostAsync("v1/embeddings", Embedding("one"));
        await Provider.WaitForCallsAsync(1, TimeSpan.FromSeconds(30));
        var b = client.PostAsync("v1/embeddings", Embedding("two"));
        await Provider.WaitForCallsAsync(2, TimeSpan.FromSeconds(30));
        Assert.Equal([KeyA, KeyB], Provider.Requests.Select(FailoverTests.KeyOf));

        using (var refused = await client.PostAsync("v1/embeddings", Embedding("three")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
            using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("deployments_saturated", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        Assert.Equal(2, Provider.CallCount);

        _release.SetResult();
        using (var answeredA = await a) Assert.Equal(HttpStatusCode.OK, answeredA.StatusCode);
        using (var answeredB = await b) Assert.Equal(HttpStatusCode.OK, answeredB.StatusCode);
        await Eventually.TrueAsync(() => InFlight("openai-a") == 0 && InFlight("openai-b") == 0, "both slots given back");
    }

    [Fact]
    public async Task The_deployments_endpoint_shows_each_cap_and_the_requests_in_flight()
    {
        Hold(KeyA);
        using var client = Gateway.CreateGatewayClient();
        var held = client.PostAsync("v1/chat/completions", Chat("held"));
        await Provider.WaitForCallsAsync(1, TimeSpan.FromSeconds(30));

        using var list = JsonDocument.Parse(await client.GetStringAsync("v1/tokenrouter/deployments"));
        var a = list.RootElement.GetProperty("data").EnumerateArray().Single(d => d.GetProperty("id").GetString() == "openai-a");
        Assert.Equal(1, a.GetProperty("max_concurrency").GetInt32());
        Assert.Equal(1, a.GetProperty("in_flight").GetInt32());

        _release.SetResult();
        using var answered = await held;
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
    }
}
