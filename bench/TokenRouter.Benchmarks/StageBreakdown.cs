using System.Diagnostics;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Benchmarks;

/// <summary>
/// Where <see cref="RequestPipeline.Prepare"/>'s time goes: runs the same stages in the same order as the pipeline
/// (all switches on) on freshly parsed envelopes and times each one separately. Diagnostic, not a benchmark.
/// </summary>
internal static class StageBreakdown
{
    private static readonly string[] Stages = ["Parse", "Chunker", "Arranger", "Canonicalizer", "Hasher (prefix)", "CacheInjector", "OutboundAdapter (write)", "Hasher (full)"];

    public static void Run(int calls)
    {
        var f = new PipelineFixture();
        foreach (var (name, target) in new[] { ("OpenAI", f.OpenAITarget), ("Anthropic", f.AnthropicTarget) })
        {
            var ticks = new long[Stages.Length];
            var bytes = new long[Stages.Length];
            for (var round = 0; round < 2; round++) // round 0 warms up
            {
                Array.Clear(ticks);
                Array.Clear(bytes);
                for (var i = 0; i < calls; i++) Once(f, target, ticks, bytes);
            }
            Console.WriteLine();
            Console.WriteLine($"Stage breakdown → {name} target, mean over {calls:N0} requests (parse + stages, as Prepare runs them):");
            Console.WriteLine();
            Console.WriteLine("| Stage | Mean | Share | Allocated |");
            Console.WriteLine("|---|---:|---:|---:|");
            var total = ticks.Sum();
            for (var s = 0; s < Stages.Length; s++)
                Console.WriteLine($"| {Stages[s]} | {ticks[s] * 1_000_000.0 / Stopwatch.Frequency / calls:F1} µs | {100.0 * ticks[s] / total:F0} % | {bytes[s] / calls:N0} B |");
            Console.WriteLine($"| total | {total * 1_000_000.0 / Stopwatch.Frequency / calls:F1} µs | | {bytes.Sum() / calls:N0} B |");
        }
    }

    private static void Once(PipelineFixture f, RouteTarget target, long[] ticks, long[] bytes)
    {
        var stage = 0;
        var t = Stopwatch.GetTimestamp();
        var a = GC.GetAllocatedBytesForCurrentThread();
        void Mark()
        {
            var now = Stopwatch.GetTimestamp();
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            ticks[stage] += now - t;
            bytes[stage] += allocated - a;
            stage++;
            t = Stopwatch.GetTimestamp();
            a = GC.GetAllocatedBytesForCurrentThread();
        }

        using var envelope = OpenAIInboundAdapter.Parse(f.Sample.Body);
        Mark();
        Chunker.Chunk(envelope);
        Mark();
        f.Arranger.Arrange(envelope, f.Identity.Scope);
        Mark();
        f.Canonicalizer.Canonicalize(envelope);
        Mark();
        envelope.PrefixHash = Hasher.ComputePrefixHash(envelope);
        Mark();
        CacheInjector.Inject(envelope, target.Provider.Kind, f.Identity.Scope, f.Options.AnthropicCacheTtl);
        Mark();
        using var body = new PooledBufferWriter(f.Sample.Body.Length + 1024);
        f.Adapters.For(target.Provider.Kind).WriteRequest(envelope, target.UpstreamModel, body);
        Mark();
        _ = Hasher.ComputeFullHash(body.WrittenSpan, target.Provider.Name, f.Identity.Scope);
        Mark();
    }
}
