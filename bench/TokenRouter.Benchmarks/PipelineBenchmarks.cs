using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Benchmarks;

/// <summary>Everything a benchmark needs to run the gateway's pure pipeline without HTTP or DI.</summary>
internal sealed class PipelineFixture
{
    public LateTurnRequest.Sample Sample { get; } = LateTurnRequest.Build();
    public RequestPipeline Pipeline { get; }
    public RouteTarget OpenAITarget { get; } = new(new ProviderEndpoint { Name = "sim-openai", Kind = ProviderKind.OpenAI, BaseUri = new Uri("http://127.0.0.1/sim/openai/v1/") }, "sim-openai");
    public RouteTarget AnthropicTarget { get; } = new(new ProviderEndpoint { Name = "sim-anthropic", Kind = ProviderKind.Anthropic, BaseUri = new Uri("http://127.0.0.1/sim/anthropic/") }, "sim-anthropic");
    public ClientIdentity Identity { get; } = new("bench-key", "bench", "0000");

    public GatewayOptions Options { get; } = new();
    public Canonicalizer Canonicalizer { get; } = new();
    public Arranger Arranger { get; } = new(new ToolOrderMemory(TimeProvider.System));
    public OutboundAdapters Adapters { get; }

    public PipelineFixture()
    {
        Adapters = new OutboundAdapters(Microsoft.Extensions.Options.Options.Create(Options));
        Pipeline = new RequestPipeline(Canonicalizer, Arranger, Adapters, new FixedOptionsMonitor<GatewayOptions>(Options));
    }

    private sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
    {
        public T CurrentValue => value;
        public T Get(string? name) => value;
        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }
}

/// <summary>
/// The request path's CPU work on one real late-turn agent request (~30 KB): parse alone, and parse + every pipeline
/// stage + outbound write + both hashes for an OpenAI and an Anthropic upstream. Each invocation parses a fresh
/// envelope (the stages mutate it), so the Prepare numbers include the parse. Allocation is expected to scale
/// with the body: the JsonDocument, one object per message/tool and the pooled outbound buffer's growth.
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private PipelineFixture _f = null!;
    private byte[] _body = [];

    [GlobalSetup]
    public void Setup()
    {
        _f = new PipelineFixture();
        _body = _f.Sample.Body;
        Console.WriteLine($"// Input: {_f.Sample.SessionId}, {_f.Sample.Turns} turns, {_f.Sample.Tools} tools, {_body.Length} bytes");
    }

    /// <summary>The floor under any parse: System.Text.Json's own document parse of the same bytes.</summary>
    [Benchmark(Description = "JsonDocument.Parse alone (floor)")]
    public int JsonDocumentParse()
    {
        using var document = System.Text.Json.JsonDocument.Parse(_body);
        return document.RootElement.GetArrayLength_Safe();
    }

    /// <summary>The floor under any single-pass parse: one forward read of every token, nothing kept.</summary>
    [Benchmark(Description = "Utf8JsonReader skim alone (floor)")]
    public int ReaderSkim()
    {
        var reader = new System.Text.Json.Utf8JsonReader(_body);
        var tokens = 0;
        while (reader.Read()) tokens++;
        return tokens;
    }

    [Benchmark(Description = "Parse (OpenAIInboundAdapter)")]
    public int Parse()
    {
        using var envelope = OpenAIInboundAdapter.Parse(_body);
        return envelope.Messages.Count;
    }

    [Benchmark(Description = "Prepare → OpenAI (parse+stages+write+hashes)")]
    public int PrepareOpenAI()
    {
        using var envelope = OpenAIInboundAdapter.Parse(_body);
        using var prepared = _f.Pipeline.Prepare(envelope, _f.OpenAITarget, _f.Identity);
        return prepared.Body.WrittenCount;
    }

    [Benchmark(Description = "Prepare → OpenAI, .NET-escaped body")]
    public int PrepareOpenAIDotNetEscaped()
    {
        using var envelope = OpenAIInboundAdapter.Parse(_f.Sample.DotNetEscapedBody);
        using var prepared = _f.Pipeline.Prepare(envelope, _f.OpenAITarget, _f.Identity);
        return prepared.Body.WrittenCount;
    }

    [Benchmark(Description = "Prepare → Anthropic (parse+stages+write+hashes)")]
    public int PrepareAnthropic()
    {
        using var envelope = OpenAIInboundAdapter.Parse(_body);
        using var prepared = _f.Pipeline.Prepare(envelope, _f.AnthropicTarget, _f.Identity);
        return prepared.Body.WrittenCount;
    }
}

internal static class JsonElementExtensions
{
    public static int GetArrayLength_Safe(this System.Text.Json.JsonElement e) =>
        e.ValueKind == System.Text.Json.JsonValueKind.Array ? e.GetArrayLength() : e.ValueKind == System.Text.Json.JsonValueKind.Object ? 1 : 0;
}

/// <summary>
/// The stages without the parse (Chunker → Arranger → Canonicalizer → Hasher → CacheInjector → OutboundAdapter →
/// Hasher): each iteration runs over <see cref="Batch"/> envelopes parsed (and promoted by a full GC) beforehand in an
/// iteration setup. The envelopes are not in the CPU cache any more, as they are right after a parse in the gateway,
/// so this is an upper bound; <c>--latency</c> prints the per-stage split measured hot, right after the parse.
/// </summary>
[MemoryDiagnoser]
[InvocationCount(Batch, 1)]
[WarmupCount(40)] // an iteration is only ~10 ms: enough warm-up iterations for tiered JIT to reach its final code
[IterationCount(40)]
public class PipelineStagesBenchmarks
{
    public const int Batch = 256;

    private PipelineFixture _f = null!;
    private readonly Envelope[] _envelopes = new Envelope[Batch];
    private int _next;

    [GlobalSetup]
    public void Setup() => _f = new PipelineFixture();

    [IterationSetup]
    public void ParseBatch()
    {
        for (var i = 0; i < Batch; i++)
        {
            _envelopes[i]?.Dispose();
            _envelopes[i] = OpenAIInboundAdapter.Parse(_f.Sample.Body);
        }
        _next = 0;
        // Promote the batch now: otherwise the first gen0 GC inside the measured calls copies all 256 live envelopes
        // and that cost lands on the stages.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    [Benchmark(Description = "Stages → OpenAI (no parse)")]
    public int StagesOpenAI()
    {
        using var prepared = _f.Pipeline.Prepare(_envelopes[_next++], _f.OpenAITarget, _f.Identity);
        return prepared.Body.WrittenCount;
    }

    [Benchmark(Description = "Stages → Anthropic (no parse)")]
    public int StagesAnthropic()
    {
        using var prepared = _f.Pipeline.Prepare(_envelopes[_next++], _f.AnthropicTarget, _f.Identity);
        return prepared.Body.WrittenCount;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var e in _envelopes) e?.Dispose();
    }
}
