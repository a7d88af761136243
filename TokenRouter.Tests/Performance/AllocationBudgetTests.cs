using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Tests.Pipeline;
using Xunit.Abstractions;

namespace TokenRouter.Tests.Performance;

/// <summary>
/// Bytes allocated per request on the gateway's own hot paths, measured on this thread
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>) after a warm-up and averaged over many requests. Allocation is
/// deterministic (unlike timings), so these budgets gate CI even on a loaded machine: the day a change doubles what a
/// request allocates, a test here fails. Budgets are the measured value plus ~25 % headroom (more for the tiny ones);
/// the measurements are in each budget's comment and in the README ("Allocation budgets"). Measured in the Debug build
/// the suite runs in (`dotnet test`); a Release build allocates the same or less.
/// </summary>
public sealed class AllocationBudgetTests(ITestOutputHelper output)
{
    private const int WarmupRounds = 3;
    private const int MeasuredRounds = 20;

    // ---- request path: parse → Chunker → Arranger → Canonicalizer → Hasher → CacheInjector → outbound write → Hasher

    // Measured per request, mean over 36 recorded requests of 12 sessions (first, middle and last turn; mean body 18 KB):
    //   OpenAI client → OpenAI 6,322 B, → Anthropic 6,201 B; Anthropic client → Anthropic 7,524 B, → OpenAI 7,565 B
    //   (before the canonical form's raw property names and JsonStringCache: 12,488 / 12,383 / 14,392 / 14,456 B; before
    //   this test's first reductions: 13,444 / 16,256 / 15,336 / 15,397 B). Measured with JsonStringCache warm, as an
    //   agent's session keeps it: each turn resends the ids, names and arguments of the turns before.
    public static TheoryData<ApiFormat, ProviderKind, int> RequestBudgets => new()
    {
        { ApiFormat.OpenAI, ProviderKind.OpenAI, 8_100 },
        { ApiFormat.OpenAI, ProviderKind.Anthropic, 7_900 },
        { ApiFormat.Anthropic, ProviderKind.Anthropic, 9_600 },
        { ApiFormat.Anthropic, ProviderKind.OpenAI, 9_700 },
    };

    [Theory]
    [MemberData(nameof(RequestBudgets))]
    public void A_recorded_request_through_parse_pipeline_and_outbound_write_stays_within_its_allocation_budget(
        ApiFormat clientFormat, ProviderKind target, int budgetBytes)
    {
        var bodies = RecordedRequests(clientFormat);
        var harness = new PipelineHarness();
        var route = Targets.For(target);
        var identity = new ClientIdentity("alloc-key", "allocation budget", "hash-alloc");
        // What an Anthropic client's version header becomes (ChatHandler passes it to the FullHash).
        var forwarded = clientFormat == ApiFormat.Anthropic && target == ProviderKind.Anthropic ? "2023-06-01\n" : null;

        var perRequest = Measure(bodies.Count, i =>
        {
            using var envelope = PipelineHarness.Parse(bodies[i], clientFormat);
            using var prepared = harness.Pipeline.Prepare(envelope, route, identity, forwarded);
            return prepared.Body.WrittenCount;
        });

        Report($"request path {clientFormat} → {target}", perRequest, budgetBytes, $"{bodies.Count} requests, mean body {bodies.Average(b => b.Length):N0} B");
        Assert.True(perRequest <= budgetBytes, $"{clientFormat} → {target}: {perRequest:N0} B allocated per request, budget {budgetBytes:N0} B.");
    }

    // ---- response path -------------------------------------------------------------------------------------------

    // Measured: 72 B for either provider (the usage object's JsonDocument; its buffers are pooled).
    [Theory]
    [InlineData(ProviderKind.OpenAI, 128)]
    [InlineData(ProviderKind.Anthropic, 128)]
    public void Reading_the_usage_of_a_whole_response_stays_within_its_allocation_budget(ProviderKind provider, int budgetBytes)
    {
        var adapter = new OutboundAdapters(Options.Create(new Gateway.Configuration.GatewayOptions())).For(provider);
        var body = provider == ProviderKind.Anthropic ? Encoding.UTF8.GetBytes(AnthropicResponse) : File.ReadAllBytes(BenchLoadFile("fake-response.json"));
        Assert.True(adapter.Usage.TryRead(body, out var check) && !check.IsEmpty, "the sample response carries usage");

        var perRequest = Measure(1, _ => adapter.Usage.TryRead(body, out var usage) ? usage.TotalTokens : 0);

        Report($"usage of a whole {provider} response", perRequest, budgetBytes, $"{body.Length:N0} B body");
        Assert.True(perRequest <= budgetBytes, $"{provider}: {perRequest:N0} B allocated per response, budget {budgetBytes:N0} B.");
    }

    // Measured per stream (scanner + SSE parser, as the upstream pump builds them per call): OpenAI 248 B (12 events),
    // Anthropic 328 B (24 events); 344 / 424 B before the parser passed one-line events on from the read and rented its
    // buffers only when needed, 4,496 / 4,576 B before the scanner shared a per-thread scratch buffer.
    [Theory]
    [InlineData(ApiFormat.OpenAI, 320)]
    [InlineData(ApiFormat.Anthropic, 416)]
    public void Reading_the_usage_of_a_stream_stays_within_its_allocation_budget(ApiFormat provider, int budgetBytes)
    {
        var events = provider == ApiFormat.Anthropic ? AnthropicStreamEvents() : OpenAIStreamEvents();
        var first = ScanStream(provider, events);
        Assert.True(first.Finished && !first.Usage.IsEmpty, "the sample stream finishes with usage");

        var perRequest = Measure(1, _ => ScanStream(provider, events).Usage.TotalTokens);

        Report($"usage of a {provider} stream", perRequest, budgetBytes, $"{events.Count} events, {events.Sum(e => e.Length):N0} B");
        Assert.True(perRequest <= budgetBytes, $"{provider} stream: {perRequest:N0} B allocated per stream, budget {budgetBytes:N0} B.");
    }

    // Measured: 160 B (the UsageRecord; pricing and the metrics with a listener attached allocate nothing more).
    [Fact]
    public void Metering_a_request_stays_within_its_allocation_budget()
    {
        const int budgetBytes = 200;
        var prices = new PriceTable(Options.Create(new PricingOptions()));
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        var metrics = new GatewayMetrics(meters, new ModelLabels(prices));
        var sink = new CountingSink();
        var meter = new UsageMeter(prices, new UnpricedModelLog(NullLogger<UnpricedModelLog>.Instance, TimeProvider.System), sink, metrics);
        // As in production, where the Prometheus exporter listens to every gateway instrument.
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == GatewayMetrics.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => { });
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => { });
        listener.Start();
        var usage = new Usage(12_400, 11_264, 0, 0, 180);
        var started = TimeProvider.System.GetTimestamp();

        var perRequest = Measure(1, _ =>
        {
            var cost = meter.Price("gpt-4o-2024-08-06", "gpt-4o", usage);
            meter.Record(new UsageRecord
            {
                RequestId = "req_01",
                KeyId = "key_01",
                Model = "gpt-4o-2024-08-06",
                Provider = "openai",
                Usage = usage,
                CostUsd = cost.Priced ? cost.CostUsd : null,
                CacheSavingsUsd = cost.CacheSavingsUsd,
                Unpriced = !cost.Priced,
                Stream = true,
                Status = 200,
                LatencyMs = TimeProvider.System.GetElapsedTime(started).TotalMilliseconds,
                Timestamp = TimeProvider.System.GetUtcNow(),
            });
            return 1;
        });

        Assert.True(sink.Count > 0);
        Report("metering (price + record + metrics)", perRequest, budgetBytes, "");
        Assert.True(perRequest <= budgetBytes, $"metering: {perRequest:N0} B allocated per request, budget {budgetBytes:N0} B.");
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    /// <summary>Mean bytes this thread allocates per call of <paramref name="call"/> over <paramref name="count"/> inputs,
    /// after <see cref="WarmupRounds"/> unmeasured rounds (tiered JIT, caches, the Arranger's tool-order memory).</summary>
    private static double Measure(int count, Func<int, int> call)
    {
        var sink = 0;
        for (var r = 0; r < WarmupRounds; r++)
            for (var i = 0; i < count; i++) sink += call(i);
        var rounds = count == 1 ? MeasuredRounds * 50 : MeasuredRounds;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var r = 0; r < rounds; r++)
            for (var i = 0; i < count; i++) sink += call(i);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        GC.KeepAlive(sink);
        return (double)allocated / (rounds * count);
    }

    private void Report(string what, double perRequest, int budget, string detail) =>
        output.WriteLine($"{what}: {perRequest:N0} B per request (budget {budget:N0} B){(detail.Length > 0 ? "; " + detail : "")}");

    /// <summary>Three requests (first, middle and last turn) of each of 12 recorded sessions (8 tau-bench, 4 ToolBench),
    /// serialized as a JavaScript or Python client writes them.</summary>
    private static List<byte[]> RecordedRequests(ApiFormat format)
    {
        var bodies = new List<byte[]>();
        foreach (var session in AgentSessions.Sample(tauBench: 8, toolBench: 4))
        {
            var points = Enumerable.Range(1, session.Turns.Count - 1).Where(k => (string?)session.Turns[k]!["role"] == "assistant").ToList();
            if (points.Count == 0) continue;
            foreach (var k in new[] { points[0], points[points.Count / 2], points[^1] }.Distinct())
            {
                var request = format == ApiFormat.Anthropic ? session.AnthropicRequest(k) : session.OpenAIRequest(k);
                bodies.Add(Encoding.UTF8.GetBytes(request.ToJsonString(ClientJson)));
            }
        }
        Assert.True(bodies.Count >= 24, $"only {bodies.Count} recorded requests");
        return bodies;
    }

    private static readonly System.Text.Json.JsonSerializerOptions ClientJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>What the upstream pump does with a stream: an SSE parser and a usage scanner per call, fed read by read
    /// (here one network read per event).</summary>
    private static UsageScanner ScanStream(ApiFormat provider, List<byte[]> reads)
    {
        var scanner = new UsageScanner(provider);
        using var parser = new SseParser();
        foreach (var read in reads) parser.Feed(read, scanner, null!);
        parser.Flush(scanner, null!);
        return scanner;
    }

    private static List<byte[]> OpenAIStreamEvents() =>
        [.. File.ReadAllText(BenchLoadFile("fake-stream.sse")).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => Encoding.UTF8.GetBytes(e + "\n\n"))];

    /// <summary>An Anthropic stream shaped like the API's: message_start with input usage, a text block in 18 deltas,
    /// message_delta with the output count, message_stop.</summary>
    private static List<byte[]> AnthropicStreamEvents()
    {
        var events = new List<(string, string)>
        {
            ("message_start", """{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":11264,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"""),
            ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""),
            ("ping", """{"type": "ping"}"""),
        };
        var words = "I can move reservation ZFA04Y to May 18 in economy. Shall I search the direct JFK to SEA flights for that day?".Split(' ');
        for (var i = 0; i < 18; i++)
            events.Add(("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""" + "\"" + words[i % words.Length] + " \"}}"));
        events.Add(("content_block_stop", """{"type":"content_block_stop","index":0}"""));
        events.Add(("message_delta", """{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":29}}"""));
        events.Add(("message_stop", """{"type":"message_stop"}"""));
        return [.. events.Select(e => Encoding.UTF8.GetBytes($"event: {e.Item1}\ndata: {e.Item2}\n\n"))];
    }

    private const string AnthropicResponse = """
        {"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"I can move reservation ZFA04Y to May 18 in economy. Shall I search the direct JFK to SEA flights for that day?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":11264,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":29,"service_tier":"standard"}}
        """;

    internal static string BenchLoadFile(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "TokenRouter.sln"))) dir = dir.Parent;
        Assert.NotNull(dir);
        return Path.Combine(dir.FullName, "bench", "load", name);
    }

    private sealed class CountingSink : IUsageSink
    {
        public long Count { get; private set; }
        public void Record(UsageRecord record) => Count++;
    }
}
