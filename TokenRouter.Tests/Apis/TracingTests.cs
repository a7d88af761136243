using System.Collections.Concurrent;
using System.Diagnostics;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>A traced request shows each pipeline stage and the upstream call as spans, with no secrets in them.</summary>
public sealed class TracingTests : GatewayWithFakeProvider
{
    [Fact]
    public async Task Request_span_has_a_child_span_per_stage_and_one_for_the_upstream_call()
    {
        Provider.RespondOpenAIText("ok", new OpenAIUsage(Prompt: 300, Completion: 7, Cached: 128));
        var all = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "TokenRouter.Gateway" or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                all.Add(activity);
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var http = Gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = ChatCompletionsApiTests.Json("""{"model":"gpt-4o-trace-probe","tools":[{"type":"function","function":{"name":"b","parameters":{"type":"object"}}},{"type":"function","function":{"name":"a","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"secret plan"}]}"""),
        };

        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        // Other tests run in this process too: this request's trace is the one whose server span names the probe model.
        Activity? Server() => all.FirstOrDefault(s => s.Source.Name == "Microsoft.AspNetCore" && (s.GetTagItem("gen_ai.request.model") as string) == "gpt-4o-trace-probe");
        List<Activity> Spans() => Server() is { } server ? all.Where(s => s.TraceId == server.TraceId).ToList() : [];
        await UpstreamSpanEndedAsync(() => Spans().Any(s => s.OperationName == "Upstream"));
        var spans = Spans();

        var names = spans.Select(s => s.OperationName).ToHashSet();
        foreach (var stage in new[] { "Chunker", "Arranger", "Canonicalizer", "Hasher.Prefix", "CacheInjector", "OutboundAdapter", "Hasher.Full", "Upstream" })
            Assert.Contains(stage, names);
        var upstream = spans.Single(s => s.OperationName == "Upstream");
        Assert.Equal("openai", upstream.GetTagItem("gen_ai.system"));
        Assert.Equal(300, upstream.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(128, upstream.GetTagItem("gen_ai.usage.cached_input_tokens"));
        var server = Server()!;
        Assert.Equal(response.Headers.GetValues("x-tokenrouter-prefix-hash").Single(), server.GetTagItem("tokenrouter.prefix_hash"));
        foreach (var span in spans)
        {
            foreach (var tag in span.TagObjects)
            {
                var value = tag.Value?.ToString() ?? "";
                Assert.DoesNotContain(GatewayFactory.ClientKey, value);
                Assert.DoesNotContain("sk-upstream", value);
                Assert.DoesNotContain("secret plan", value);
            }
        }
    }

    private static Task UpstreamSpanEndedAsync(Func<bool> condition) =>
        Eventually.TrueAsync(condition, "the upstream span should end once the response has been relayed");
}
