using System.Diagnostics;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;

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
            for (var round = 0; round < 2; round++) // round 0 warms up
            {
                Array.Clear(ticks);
                for (var i = 0; i < calls; i++) Once(f, target, ticks);
            }
            Console.WriteLine();
            Console.WriteLine($"Stage breakdown → {name} target, mean over {calls:N0} requests (parse + stages, as Prepare runs them):");
            Console.WriteLine();
            Console.WriteLine("| Stage | Mean | Share |");
            Console.WriteLine("|---|---:|---:|");
            var total = ticks.Sum();
            for (var s = 0; s < Stages.Length; s++)
                Console.WriteLine($"| {Stages[s]} | {ticks[s] * 1_000_000.0 / Stopwatch.Frequency / calls:F1} µs | {100.0 * ticks[s] / total:F0} % |");
            Console.WriteLine($"| total | {total * 1_000_000.0 / Stopwatch.Frequency / calls:F1} µs | |");
        }
    }

    private static void Once(PipelineFixture f, RouteTarget target, long[] ticks)
    {
        var t0 = Stopwatch.GetTimestamp();
        using var envelope = OpenAIInboundAdapter.Parse(f.Sample.Body);
        var t1 = Stopwatch.GetTimestamp();
        Chunker.Chunk(envelope);
        var t2 = Stopwatch.GetTimestamp();
        f.Arranger.Arrange(envelope, f.Identity.Scope);
        var t3 = Stopwatch.GetTimestamp();
        f.Canonicalizer.Canonicalize(envelope);
        var t4 = Stopwatch.GetTimestamp();
        envelope.PrefixHash = Hasher.ComputePrefixHash(envelope);
        var t5 = Stopwatch.GetTimestamp();
        CacheInjector.Inject(envelope, target.Provider.Kind, f.Identity.Scope, f.Options.AnthropicCacheTtl);
        var t6 = Stopwatch.GetTimestamp();
        using var body = new PooledBufferWriter(f.Sample.Body.Length + 1024);
        f.Adapters.For(target.Provider.Kind).WriteRequest(envelope, target.UpstreamModel, body);
        var t7 = Stopwatch.GetTimestamp();
        _ = Hasher.ComputeFullHash(body.WrittenSpan, target.Provider.Name, f.Identity.Scope);
        var t8 = Stopwatch.GetTimestamp();
        ticks[0] += t1 - t0; ticks[1] += t2 - t1; ticks[2] += t3 - t2; ticks[3] += t4 - t3;
        ticks[4] += t5 - t4; ticks[5] += t6 - t5; ticks[6] += t7 - t6; ticks[7] += t8 - t7;
    }
}
