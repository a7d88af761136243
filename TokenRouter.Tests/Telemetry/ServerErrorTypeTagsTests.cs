using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// <c>error.type</c> on ASP.NET Core's request metric for a 5xx answered without an exception, set by the gateway in
/// place of OpenTelemetry's extra middleware. The tags are read from the request's own metrics feature (a probe
/// wrapped around the whole pipeline), not from <c>/metrics</c>, which other gateways of the test process add to.
/// </summary>
public sealed class ServerErrorTypeTagsTests
{
    private const string ProbeHeader = "x-test-probe";

    [Fact]
    public async Task A_5xx_relayed_from_the_provider_is_tagged_with_its_status_and_a_200_is_not()
    {
        await using var provider = await FakeProvider.StartAsync();
        var probe = new TagProbe();
        await using var gateway = new GatewayFactory(GatewayFactory.ProvidersAt(provider),
            services => services.AddSingleton<IStartupFilter>(probe));
        using var client = gateway.CreateGatewayClient();

        provider.RespondError(400, FakeResponses.OpenAIErrorBody("bad request", "invalid_request_error"));
        var refused = await SendAsync(client, "refused");
        provider.RespondError(500, FakeResponses.OpenAIErrorBody("boom"));
        var failed = await SendAsync(client, "failed");
        provider.RespondOpenAIText("fine", new OpenAIUsage(Prompt: 10, Completion: 1));
        var answered = await SendAsync(client, "answered");

        Assert.Equal(HttpStatusCode.BadRequest, refused);
        Assert.True((int)failed >= 500, $"the provider's 500 reaches the client as a 5xx, got {(int)failed}");
        Assert.Equal(HttpStatusCode.OK, answered);
        Assert.Equal([((int)failed).ToString()], probe.ErrorTypes("failed"));
        Assert.Empty(probe.ErrorTypes("refused"));
        Assert.Empty(probe.ErrorTypes("answered"));
    }

    [Fact]
    public async Task OpenTelemetrys_own_middleware_for_it_is_not_in_the_gateways_pipeline()
    {
        // What the removal looks for is there to remove: OpenTelemetry's instrumentation registers its middleware.
        var plain = new ServiceCollection();
        plain.AddOpenTelemetry().WithMetrics(metrics => metrics.AddAspNetCoreInstrumentation());
        Assert.Single(plain, ServerErrorTypeTags.IsOpenTelemetryStartupFilter);

        await using var gateway = new GatewayFactory();
        _ = gateway.BaseAddress;
        Assert.DoesNotContain(gateway.Services.GetServices<IStartupFilter>(), f => f.GetType().Namespace!.StartsWith("OpenTelemetry.", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(503, false, "503")]
    [InlineData(502, true, "502")]
    [InlineData(200, true, null)]
    [InlineData(404, false, null)]
    public async Task A_request_that_needs_no_key_is_tagged_after_it_completes(int status, bool completesLater, string? expected)
    {
        var (context, tags) = ContextWithMetricsTags();
        RequestDelegate next = async c =>
        {
            if (completesLater) await Task.Yield();
            c.Response.StatusCode = status;
        };

        await ServerErrorTypeTags.AfterAsync(context, next);

        Assert.Equal(expected is null ? [] : [new KeyValuePair<string, object?>("error.type", expected)], tags);
    }

    [Fact]
    public void An_error_type_an_exception_handler_set_is_kept()
    {
        var (context, tags) = ContextWithMetricsTags();
        tags.Add(new("error.type", "System.InvalidOperationException"));
        context.Response.StatusCode = 500;

        ServerErrorTypeTags.Add(context);

        Assert.Equal([new KeyValuePair<string, object?>("error.type", "System.InvalidOperationException")], tags);
    }

    private static (HttpContext, List<KeyValuePair<string, object?>>) ContextWithMetricsTags()
    {
        var feature = new MetricsTags();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpMetricsTagsFeature>(feature);
        return (context, feature.Tags);
    }

    private static async Task<HttpStatusCode> SendAsync(HttpClient client, string probe)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = JsonContent.Create(new JsonObject
            {
                ["model"] = "gpt-4o",
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "which tags? " + probe }),
            }),
        };
        request.Headers.Add(ProbeHeader, probe);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    private sealed class MetricsTags : IHttpMetricsTagsFeature
    {
        public List<KeyValuePair<string, object?>> Tags { get; } = [];
        ICollection<KeyValuePair<string, object?>> IHttpMetricsTagsFeature.Tags => Tags;
        public bool MetricsDisabled { get; set; }
    }

    /// <summary>Outermost middleware: records the metric tags of each probed request once the pipeline has finished.</summary>
    private sealed class TagProbe : IStartupFilter
    {
        private readonly ConcurrentDictionary<string, string[]> _errorTypes = new();

        public string[] ErrorTypes(string probe) => _errorTypes[probe];

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, inner) =>
            {
                await inner(context);
                if (context.Request.Headers[ProbeHeader].ToString() is { Length: > 0 } probe)
                {
                    var tags = context.Features.Get<IHttpMetricsTagsFeature>()?.Tags ?? throw new InvalidOperationException("no metrics tags feature");
                    _errorTypes[probe] = [.. tags.Where(t => t.Key == "error.type").Select(t => t.Value?.ToString() ?? "")];
                }
            });
            next(app);
        };
    }
}
