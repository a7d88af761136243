using System.Net;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Limits;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// What the gateway exports at <c>/metrics</c> after a known sequence of requests against a fake provider, read back
/// over HTTP in the Prometheus text format: exact counts, token sums and dollar sums under the exposition names that
/// the Grafana dashboard queries.
/// </summary>
[Collection(ProcessWideMetricsCollection.Name)]
public sealed class GatewayMetricsTests
{
    // gpt-4o list prices, USD per 1M tokens: input 2.50, cached input 1.25, output 10.00.
    private static readonly ModelPrice Gpt4o = PriceTable.ListPrices["gpt-4o"];

    private const string Requests = "tokenrouter_requests_total";
    private const string Tokens = "tokenrouter_tokens_total";
    private const string CostUsd = "tokenrouter_cost_USD_total";
    private const string CacheSavingsUsd = "tokenrouter_cache_savings_USD_total";
    private const string DedupSavingsUsd = "tokenrouter_dedup_savings_USD_total";
    private const string DedupRequests = "tokenrouter_dedup_requests_total";
    private const string Unpriced = "tokenrouter_unpriced_requests_total";
    private const string Rejections = "tokenrouter_rejections_total";
    private const string Inflight = "tokenrouter_requests_inflight";

    [Fact]
    public async Task Priced_cached_and_deduplicated_requests_are_exported_with_exact_counts_tokens_and_dollar_sums()
    {
        await using var gateway = await MeteredGateway.StartAsync();
        var model = MeteredGateway.PricedAsGpt4o();
        var provider = gateway.Provider;

        // 1. A priced request with nothing cached.
        provider.RespondOpenAIText("first", new OpenAIUsage(Prompt: 1000, Completion: 100));
        using (var first = await gateway.SendAsync(MeteredGateway.Chat(model, "first question")))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        // 2. A request half of whose prompt the provider read from its cache.
        provider.RespondOpenAIText("second", new OpenAIUsage(Prompt: 2048, Completion: 50, Cached: 1024));
        string providerName;
        using (var second = await gateway.SendAsync(MeteredGateway.Chat(model, "second question")))
        {
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            providerName = second.Headers.GetValues("x-tokenrouter-provider").Single();
        }

        // 3. Four identical requests while the provider holds the first: one upstream call, three followers.
        const int identical = 4;
        provider.RespondOpenAIText("shared", new OpenAIUsage(Prompt: 400, Completion: 20));
        var callsBefore = provider.CallCount;
        var pipelinesBefore = (await gateway.ScrapeAsync()).Sum("tokenrouter_pipeline_duration_seconds_count");
        provider.CloseGate();
        var concurrent = Enumerable.Range(0, identical)
            .Select(_ => gateway.SendAsync(MeteredGateway.Chat(model, "the same question")))
            .ToArray();
        await provider.WaitForWaitingAtGateAsync(1, MeteredGateway.Timeout);
        // Every request has been through the pipeline, after which it joins the in-flight exchange synchronously.
        await gateway.ScrapeWhenAsync(
            s => s.Sum("tokenrouter_pipeline_duration_seconds_count") >= pipelinesBefore + identical,
            $"{identical} more requests through the pipeline");
        provider.OpenGate();
        var responses = await Task.WhenAll(concurrent);
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(identical - 1, responses.Count(r => r.Headers.Contains("x-tokenrouter-deduplicated")));
        Assert.Equal(callsBefore + 1, provider.CallCount);
        foreach (var response in responses) response.Dispose();

        var scrape = await gateway.ScrapeWhenAsync(
            s => s.Sum(Requests, ("model", model)) >= 2 + identical && s.Sum(Inflight) == 0,
            $"{2 + identical} requests for {model} and none in flight");

        var m = ("model", model);
        Assert.Equal(2 + identical, scrape.Sum(Requests, m, ("status", "2xx"), ("stream", "false"), ("provider", providerName)));
        Assert.Equal(2 + identical, scrape.Series(Requests, m).Sum(s => s.Value));

        // Tokens are billed once per upstream call: followers add none.
        Assert.Equal(1000 + 2048 + 400, scrape.Sum(Tokens, m, ("kind", "prompt")));
        Assert.Equal(1024, scrape.Sum(Tokens, m, ("kind", "cached_read")));
        Assert.Equal(100 + 50 + 20, scrape.Sum(Tokens, m, ("kind", "completion")));
        Assert.Empty(scrape.Series(Tokens, m, ("kind", "cache_write")));

        var firstCost = Usd(1000, Gpt4o.Input) + Usd(100, Gpt4o.Output);                                         // 0.0035
        var secondCost = Usd(1024, Gpt4o.Input) + Usd(1024, Gpt4o.CachedInput) + Usd(50, Gpt4o.Output);         // 0.00434
        var sharedCost = Usd(400, Gpt4o.Input) + Usd(20, Gpt4o.Output);                                          // 0.0012
        Assert.Equal((double)(firstCost + secondCost + sharedCost), scrape.Sum(CostUsd, m), 12);
        Assert.Equal((double)(Usd(1024, Gpt4o.Input) - Usd(1024, Gpt4o.CachedInput)), scrape.Sum(CacheSavingsUsd, m), 12); // 0.00128
        Assert.Equal(identical - 1, scrape.Sum(DedupRequests, m));
        Assert.Equal((double)((identical - 1) * sharedCost), scrape.Sum(DedupSavingsUsd, m), 12);                  // 0.0036
        Assert.Empty(scrape.Series(Unpriced, m));

        // Latency histograms: one upstream call and one overhead sample per leader, a pipeline run per request.
        Assert.Equal(3, scrape.Sum("tokenrouter_upstream_ttfb_seconds_count", ("provider", providerName)));
        Assert.Equal(3, scrape.Sum("tokenrouter_gateway_overhead_seconds_count"));
        Assert.Equal(2 + identical, scrape.Sum("tokenrouter_pipeline_duration_seconds_count"));
        Assert.Equal("histogram", scrape.Types["tokenrouter_upstream_ttfb_seconds"]);
        Assert.Equal("counter", scrape.Types[CostUsd]);
        Assert.Equal(0, scrape.Sum(Inflight));
        Assert.Empty(scrape.Series(Rejections));
    }

    [Fact]
    public async Task Streamed_request_is_metered_from_the_usage_in_the_stream()
    {
        await using var gateway = await MeteredGateway.StartAsync();
        var model = MeteredGateway.PricedAsGpt4o();
        gateway.Provider.RespondOpenAIText("one two three", new OpenAIUsage(Prompt: 3000, Completion: 30, Cached: 2048));

        using (var response = await gateway.SendAsync(MeteredGateway.Chat(model, "stream it", stream: true)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            await response.Content.ReadAsStringAsync();
        }

        var scrape = await gateway.ScrapeWhenAsync(s => s.Sum(Requests, ("model", model)) >= 1 && s.Sum(Inflight) == 0, $"the stream for {model}");
        var m = ("model", model);
        Assert.Equal(1, scrape.Sum(Requests, m, ("stream", "true"), ("status", "2xx")));
        Assert.Equal(3000, scrape.Sum(Tokens, m, ("kind", "prompt")));
        Assert.Equal(2048, scrape.Sum(Tokens, m, ("kind", "cached_read")));
        Assert.Equal(30, scrape.Sum(Tokens, m, ("kind", "completion")));
        var cost = Usd(952, Gpt4o.Input) + Usd(2048, Gpt4o.CachedInput) + Usd(30, Gpt4o.Output);
        Assert.Equal((double)cost, scrape.Sum(CostUsd, m), 12);
        Assert.Equal((double)(Usd(2048, Gpt4o.Input) - Usd(2048, Gpt4o.CachedInput)), scrape.Sum(CacheSavingsUsd, m), 12);
    }

    [Fact]
    public async Task Unpriced_model_is_counted_as_unpriced_and_never_exported_as_zero_cost()
    {
        await using var gateway = await MeteredGateway.StartAsync();
        // Routed to OpenAI by its "gpt-" prefix, but no listed price matches it.
        var model = "gpt-tr-unlisted-" + Guid.NewGuid().ToString("N")[..8];
        gateway.Provider.RespondOpenAIText("hello", new OpenAIUsage(Prompt: 500, Completion: 10));

        using (var response = await gateway.SendAsync(MeteredGateway.Chat(model, "price me")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("true", response.Headers.GetValues("x-tokenrouter-unpriced").Single());
        }

        // A model name the gateway has no price for is client input: it shares one bounded label instead of its own series.
        var m = ("model", "other");
        var scrape = await gateway.ScrapeWhenAsync(s => s.Sum(Requests, m) >= 1, $"the request for {model}");
        Assert.DoesNotContain(model, scrape.ToString());
        Assert.Equal(1, scrape.Sum(Unpriced, m));
        Assert.Equal(500, scrape.Sum(Tokens, m, ("kind", "prompt")));
        Assert.Empty(scrape.Series(CostUsd, m));
        Assert.Empty(scrape.Series(CacheSavingsUsd, m));
    }

    [Fact]
    public async Task Unauthenticated_and_unknown_model_requests_are_not_metered_as_chat_requests_or_rejections()
    {
        await using var gateway = await MeteredGateway.StartAsync();
        var model = MeteredGateway.PricedAsGpt4o();
        using var stranger = gateway.Gateway.CreateGatewayClient("sk-tr-not-a-key-of-this-gateway");

        using (var unauthenticated = await gateway.SendAsync(MeteredGateway.Chat(model, "let me in"), stranger))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        }

        using (var unknown = await gateway.SendAsync(MeteredGateway.Chat("no-such-model-" + Guid.NewGuid().ToString("N")[..8], "hello")))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }

        // ASP.NET Core's own request metric still shows both answers, so the dashboard's HTTP panels see them.
        var route = ("http_route", "/v1/chat/completions");
        var scrape = await gateway.ScrapeWhenAsync(
            s => s.Sum("http_server_request_duration_seconds_count", route) >= 2 && s.Sum(Inflight) == 0,
            "two answered requests on /v1/chat/completions");
        Assert.Equal(1, scrape.Sum("http_server_request_duration_seconds_count", route, ("http_response_status_code", "401")));
        Assert.Equal(1, scrape.Sum("http_server_request_duration_seconds_count", route, ("http_response_status_code", "404")));

        // Filtered by this test's model: any other gateway alive in the test process reports under the same meter name.
        Assert.Empty(scrape.Series(Requests, ("model", model)));
        Assert.Empty(scrape.Series(Tokens, ("model", model)));
        Assert.Empty(scrape.Series(Rejections));
        Assert.Empty(gateway.Gateway.Service<InMemoryUsageSink>().Snapshot());
        Assert.Equal(0, gateway.Provider.CallCount);
    }

    [Fact]
    public async Task Request_refused_by_a_concurrency_limit_is_counted_as_a_rejection_and_not_as_a_chat_request()
    {
        await using var gateway = await MeteredGateway.StartAsync(new Dictionary<string, string?> { ["Limits:GlobalConcurrent"] = "1" });
        var model = MeteredGateway.PricedAsGpt4o();
        gateway.Provider.RespondOpenAIText("held", new OpenAIUsage(Prompt: 100, Completion: 5));

        // The first request holds the only slot while the provider holds it; a different one arrives meanwhile.
        gateway.Provider.CloseGate();
        var held = gateway.SendAsync(MeteredGateway.Chat(model, "held"));
        await gateway.Provider.WaitForWaitingAtGateAsync(1, MeteredGateway.Timeout);
        using (var refused = await gateway.SendAsync(MeteredGateway.Chat(model, "refused")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter is not null, "a concurrency refusal says when to retry");
        }

        gateway.Provider.OpenGate();
        using (var response = await held)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var scrape = await gateway.ScrapeWhenAsync(s => s.Sum(Requests, ("model", model)) >= 1 && s.Sum(Inflight) == 0, $"the held request for {model}");
        Assert.Equal(1, scrape.Sum(Rejections, ("reason", LimitErrors.Reasons.GlobalConcurrency)));
        Assert.Equal(1, scrape.Sum(Rejections));
        Assert.Equal(1, scrape.Sum(Requests, ("model", model)));
        Assert.Equal(1, scrape.Sum("http_server_request_duration_seconds_count", ("http_route", "/v1/chat/completions"), ("http_response_status_code", "429")));
        Assert.Equal((double)(Usd(100, Gpt4o.Input) + Usd(5, Gpt4o.Output)), scrape.Sum(CostUsd, ("model", model)), 12);
        Assert.Equal(1, gateway.Provider.CallCount);
    }

    [Fact]
    public async Task Attempts_and_prompt_tokens_are_counted_per_deployment_by_outcome()
    {
        // Two deployments of OpenAI; the huge weight makes "metrics-bad" the first choice, and it answers 503.
        await using var gateway = await MeteredGateway.StartAsync(new Dictionary<string, string?>
        {
            ["Providers:OpenAI:ApiKey"] = null,
            ["Providers:OpenAI:Deployments:0:Name"] = "metrics-bad",
            ["Providers:OpenAI:Deployments:0:ApiKey"] = "sk-metrics-bad",
            ["Providers:OpenAI:Deployments:0:Weight"] = "1000000",
            ["Providers:OpenAI:Deployments:1:Name"] = "metrics-good",
            ["Providers:OpenAI:Deployments:1:ApiKey"] = "sk-metrics-good",
        });
        var model = MeteredGateway.PricedAsGpt4o();
        var failing = FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("overloaded"));
        var answering = FakeResponses.OpenAIText("fine", new OpenAIUsage(Prompt: 1000, Completion: 10, Cached: 512));
        gateway.Provider.Respond((r, context) => r.Header("Authorization") == "Bearer sk-metrics-bad" ? failing(r, context) : answering(r, context));

        using (var response = await gateway.SendAsync(MeteredGateway.Chat(model, "which key answers?")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        gateway.Provider.Respond(FakeResponses.Error(400, FakeResponses.OpenAIErrorBody("bad request", "invalid_request_error")));
        using (var refused = await gateway.SendAsync(MeteredGateway.Chat(model, "a request the provider refuses")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }

        var scrape = await gateway.ScrapeWhenAsync(s => s.Sum(Requests, ("model", model)) == 2, "both requests metered");
        const string attempts = "tokenrouter_deployment_requests_total";
        Assert.Equal(1, scrape.Sum(attempts, ("deployment", "metrics-bad"), ("outcome", "failure")));
        Assert.Equal(1, scrape.Sum(attempts, ("deployment", "metrics-good"), ("outcome", "success")));
        // The 400 is the client's own error: not a failure of the deployment, and not retried elsewhere. (Deployment names
        // are this test's own: other gateways in the test process report under the same meter name.)
        Assert.Equal(1, scrape.Sum(attempts, ("deployment", "metrics-bad"), ("outcome", "client_error"))
            + scrape.Sum(attempts, ("deployment", "metrics-good"), ("outcome", "client_error")));
        Assert.Equal(3, scrape.Sum(attempts, ("deployment", "metrics-bad")) + scrape.Sum(attempts, ("deployment", "metrics-good")));
        Assert.Equal(1000, scrape.Sum("tokenrouter_deployment_input_tokens_total", ("deployment", "metrics-good")));
        Assert.Equal(512, scrape.Sum("tokenrouter_deployment_cached_tokens_total", ("deployment", "metrics-good")));
        Assert.Empty(scrape.Series("tokenrouter_deployment_input_tokens_total", ("deployment", "metrics-bad")));
        Assert.Equal(1, scrape.Sum(Requests, ("model", model), ("status", "2xx"), ("stream", "false")));
        Assert.Equal(1, scrape.Sum(Requests, ("model", model), ("status", "4xx"), ("stream", "false")));
        Assert.Equal("counter", scrape.Types[attempts]);
    }

    [Fact]
    public async Task Platform_instruments_the_gateway_metrics_repeat_are_not_exported()
    {
        await using var gateway = await MeteredGateway.StartAsync();
        gateway.Provider.RespondOpenAIText("hello", new OpenAIUsage(Prompt: 10, Completion: 1));
        using (var response = await gateway.SendAsync(MeteredGateway.Chat(MeteredGateway.PricedAsGpt4o(), "hello")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var scrape = await gateway.ScrapeWhenAsync(s => s.Sum("http_server_request_duration_seconds_count", ("http_route", "/v1/chat/completions")) >= 1,
            "the server's own request duration");
        Assert.DoesNotContain(scrape.Names, n => n.StartsWith("aspnetcore_authentication_authenticate_duration", StringComparison.Ordinal));
        Assert.DoesNotContain(scrape.Names, n => n.StartsWith("aspnetcore_routing_match_attempts", StringComparison.Ordinal));
        Assert.DoesNotContain(scrape.Names, n => n.StartsWith("http_client_request_duration", StringComparison.Ordinal));
        Assert.DoesNotContain(scrape.Names, n => n.StartsWith("http_client_request_time_in_queue", StringComparison.Ordinal));
        Assert.DoesNotContain(scrape.Names, n => n.StartsWith("http_client_active_requests", StringComparison.Ordinal));
    }

    private static decimal Usd(int tokens, decimal pricePerMillion) => tokens * pricePerMillion / 1_000_000m;
}
