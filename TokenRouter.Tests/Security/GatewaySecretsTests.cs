using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TokenRouter.Tests.Infrastructure;
using TokenRouter.Tests.Telemetry;

namespace TokenRouter.Tests.Security;

/// <summary>
/// One run through the gateway — chat, messages (both providers, streamed and not), passthrough endpoints, the model
/// list, and failures: unknown keys, a provider's 500, malformed JSON, oversized headers and body — with the client's
/// key in every header a client might put it in. Everything is recorded: what the fake provider received, what the
/// client got back, every log entry at Trace level, every activity, and the /metrics scrape.
/// </summary>
public sealed class GatewaySecretsRun : IAsyncLifetime
{
    private static string Unique(string prefix) => prefix + Guid.NewGuid().ToString("N");

    public string ClientKey { get; } = Unique("sk-tr-client-secret-");
    public string BadKey { get; } = Unique("sk-tr-unknown-secret-");
    public string OpenAIKey { get; } = Unique("sk-openai-secret-");
    public string AnthropicKey { get; } = Unique("sk-ant-secret-");
    public string DeepSeekKey { get; } = Unique("sk-deepseek-secret-");

    public FakeProvider Provider { get; private set; } = null!;
    public CapturingLoggerProvider Logs { get; } = new();
    public List<string> ClientResponses { get; } = [];
    public List<string> Traces { get; private set; } = [];
    public string MetricsScrape { get; private set; } = "";
    public List<(string Path, HttpStatusCode Status)> Statuses { get; } = [];

    public IReadOnlyDictionary<string, string> AllSecrets => new Dictionary<string, string>
    {
        ["client key"] = ClientKey,
        ["unknown client key"] = BadKey,
        ["OpenAI provider key"] = OpenAIKey,
        ["Anthropic provider key"] = AnthropicKey,
        ["DeepSeek provider key"] = DeepSeekKey,
    };

    public async Task InitializeAsync()
    {
        Provider = await FakeProvider.StartAsync();
        var settings = GatewayFactory.ProvidersAt(Provider);
        settings["Gateway:ApiKeys"] = ClientKey;
        settings["Providers:OpenAI:ApiKey"] = OpenAIKey;
        settings["Providers:Anthropic:ApiKey"] = AnthropicKey;
        settings["Providers:DeepSeek:ApiKey"] = DeepSeekKey;
        settings["Gateway:MaxRequestBodyBytes"] = "65536";
        settings["Logging:LogLevel:Default"] = "Trace";
        settings["Logging:Console:LogLevel:Default"] = "None";
        settings["Logging:Debug:LogLevel:Default"] = "None";

        using var activities = new ActivityCapture();
        // A provider-specific rule wins over every category rule of appsettings: this provider sees everything.
        await using (var gateway = new GatewayFactory(settings, services => services
                         .AddSingleton<ILoggerProvider>(Logs)
                         .Configure<LoggerFilterOptions>(o => o.AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace))))
        {
            using var http = new HttpClient { BaseAddress = gateway.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
            await RunAsync(http);
            using var scrape = await http.GetAsync("metrics");
            MetricsScrape = await scrape.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        }
        Traces = [.. activities.Activities];
    }

    private async Task RunAsync(HttpClient http)
    {
        const string chat = """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""";
        const string chatToClaude = """{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}""";
        const string messages = """{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""";
        const string messagesToGpt = """{"model":"gpt-4o","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""";

        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chat, ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chatToClaude, ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chat.Replace("\"hi\"}]", "\"hi\"}],\"stream\":true"), ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/messages", messages, ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/messages", messagesToGpt, ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/messages", messages.Replace("\"max_tokens\"", "\"stream\":true,\"max_tokens\""), ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/embeddings", """{"model":"gpt-4o","input":"x"}""", ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/messages/count_tokens", messages, ClientKey);
        await SendAsync(http, HttpMethod.Get, "v1/files", null, ClientKey);
        await SendAsync(http, HttpMethod.Get, "v1/models", null, ClientKey);

        // Failures: unknown keys, a provider error, malformed JSON, oversized headers and body.
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chat, BadKey);
        await SendAsync(http, HttpMethod.Post, "v1/messages", messages, BadKey);
        await SendAsync(http, HttpMethod.Get, "v1/files", null, BadKey);
        Provider.RespondNext(FakeResponses.Error(500, """{"error":{"message":"upstream exploded","type":"server_error"}}"""));
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chat, ClientKey);
        Provider.RespondNext(FakeResponses.Error(401, """{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"""));
        await SendAsync(http, HttpMethod.Post, "v1/messages", messages, ClientKey);
        // Providers that echo the key they were given in their error message (self-hosted OpenAI-compatible servers do):
        // relayed as is (same format), re-rendered (other format), and passed through.
        Provider.RespondNext(FakeResponses.Error(401, $$$"""{"error":{"message":"Incorrect API key provided: {{{OpenAIKey}}}","type":"invalid_request_error"}}"""));
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chat, ClientKey);
        Provider.RespondNext(FakeResponses.Error(401, $$$"""{"type":"error","error":{"type":"authentication_error","message":"bad key {{{AnthropicKey}}}"}}"""));
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chatToClaude, ClientKey);
        Provider.RespondNext(FakeResponses.Error(401, $$$"""{"error":{"message":"Incorrect API key provided: {{{OpenAIKey}}}"}}"""));
        await SendAsync(http, HttpMethod.Post, "v1/embeddings", """{"model":"gpt-4o","input":"x"}""", ClientKey, anthropicHeaders: false);
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", "{\"model\":", ClientKey);
        await SendAsync(http, HttpMethod.Post, "v1/chat/completions", chat, ClientKey, bigHeader: true);
        await SendAsync(http, HttpMethod.Post, "v1/messages", "{\"model\":\"claude-sonnet-4-5\",\"x\":\"" + new string('a', 70_000) + "\"}", ClientKey);
    }

    /// <summary>Sends with the key in every header a client might use for it: the standard ones and custom ones.</summary>
    private async Task SendAsync(HttpClient http, HttpMethod method, string path, string? json, string key, bool bigHeader = false, bool anthropicHeaders = true)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
        if (anthropicHeaders) request.Headers.TryAddWithoutValidation("x-api-key", key);
        request.Headers.TryAddWithoutValidation("api-key", key);
        request.Headers.TryAddWithoutValidation("X-Custom-Auth", "Token " + key);
        request.Headers.TryAddWithoutValidation("Cookie", "session=" + key);
        if (anthropicHeaders) request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");
        if (bigHeader) request.Headers.TryAddWithoutValidation("X-Padding", new string('p', 40_000));
        if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Statuses.Add((path, response.StatusCode));
        ClientResponses.Add($"{method} {path} → {(int)response.StatusCode}\n{response.Headers}{response.Content.Headers}\n{body}");
    }

    public async Task DisposeAsync() => await Provider.DisposeAsync();
}

[Collection(ProcessWideMetricsCollection.Name)] // its activity listener samples every source in the process: run alone
public sealed class GatewaySecretsTests(GatewaySecretsRun run) : IClassFixture<GatewaySecretsRun>
{
    [Fact]
    public void The_client_key_never_reaches_a_provider_in_any_header_or_body_on_any_endpoint()
    {
        var upstream = run.Provider.Requests;
        // The run reached the provider on every kind of endpoint (otherwise this test would prove nothing).
        foreach (var path in new[] { "/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/messages/count_tokens", "/v1/files" })
            Assert.Contains(upstream, r => r.Path == path);

        foreach (var r in upstream)
        {
            foreach (var (name, value) in r.Headers)
            {
                Assert.DoesNotContain(run.ClientKey, value, StringComparison.Ordinal);
                Assert.DoesNotContain(run.BadKey, value, StringComparison.Ordinal);
            }
            Assert.DoesNotContain(run.ClientKey, r.BodyText, StringComparison.Ordinal);
            Assert.DoesNotContain(run.ClientKey, r.PathAndQuery, StringComparison.Ordinal);
            // What went instead is the provider's own key, in the provider's own header.
            var ownKey = r.Headers.TryGetValue("x-api-key", out var x) ? x : r.Headers.GetValueOrDefault("Authorization");
            Assert.True(ownKey == run.AnthropicKey || ownKey == "Bearer " + run.OpenAIKey,
                $"{r.Method} {r.Path} carried '{ownKey}' instead of its provider's key.");
        }
    }

    [Fact]
    public void No_key_appears_in_logs_traces_metrics_or_error_bodies()
    {
        // The run had successes and every kind of failure.
        Assert.Contains(run.Statuses, s => s.Status == HttpStatusCode.OK);
        Assert.Contains(run.Statuses, s => s.Status == HttpStatusCode.Unauthorized);
        Assert.Contains(run.Statuses, s => s.Status == HttpStatusCode.BadRequest);
        Assert.Contains(run.Statuses, s => s.Status == HttpStatusCode.RequestHeaderFieldsTooLarge);
        Assert.Contains(run.Statuses, s => s.Status == HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains(run.Statuses, s => (int)s.Status >= 500);
        Assert.NotEmpty(run.Logs.Entries);
        Assert.Contains(run.Logs.Entries, e => e.StartsWith("Trace", StringComparison.Ordinal) || e.StartsWith("Debug", StringComparison.Ordinal));
        Assert.Contains(run.Traces, t => t.Contains("TokenRouter", StringComparison.Ordinal));
        Assert.Contains("tokenrouter", run.MetricsScrape, StringComparison.OrdinalIgnoreCase);

        Assert.True(run.Logs.Entries.Count(e => e.StartsWith("Trace", StringComparison.Ordinal)) > 20, "Trace-level logging was captured");
        Assert.Contains(run.Logs.Entries, e => e.Contains("/v1/chat/completions", StringComparison.Ordinal));
        // The providers' echoed keys were there to leak, and reached the client redacted.
        Assert.Equal(3, run.ClientResponses.Count(r => r.Contains("[redacted]", StringComparison.Ordinal)));

        SecretGrep.AssertNoneIn(run.Logs.Entries, "the logs", run.AllSecrets);
        SecretGrep.AssertNoneIn(run.Traces, "the traces", run.AllSecrets);
        SecretGrep.AssertNoneIn([run.MetricsScrape], "the /metrics scrape", run.AllSecrets);
        SecretGrep.AssertNoneIn(run.ClientResponses, "a response to the client", run.AllSecrets);
    }
}
