using System.Diagnostics;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;
using TokenRouter.Benchmarks;

// Usage (from the repo root):
//   dotnet run -c Release --project bench/TokenRouter.Benchmarks -- --quick --filter '*'     ~1–2 min
//   dotnet run -c Release --project bench/TokenRouter.Benchmarks -- --filter '*'             full BenchmarkDotNet job
//   dotnet run -c Release --project bench/TokenRouter.Benchmarks -- --latency                per-call p50/p95/p99 + per-stage means (no BDN)
//   dotnet run -c Release --project bench/TokenRouter.Benchmarks -- --spin-parse             20 s of parsing, for perf record
// Every other argument goes to BenchmarkDotNet (--filter, --job, --exporters, …).

if (args.Contains("--latency"))
{
    PerCallLatency.Run(args.Contains("--quick") ? 5_000 : 50_000);
    StageBreakdown.Run(args.Contains("--quick") ? 2_000 : 20_000);
    return;
}

if (args.Contains("--spin-parse"))
{
    // A steady loop of the OpenAI parse for an external profiler (perf record with DOTNET_PerfMapEnabled=1).
    var spin = new PipelineBenchmarks();
    spin.Setup();
    var until = Stopwatch.StartNew();
    Func<int> work = args.Contains("--dotnet-escaped") ? spin.PrepareOpenAIDotNetEscaped : spin.Parse;
    while (until.Elapsed < TimeSpan.FromSeconds(20)) work();
    return;
}

var quick = args.Contains("--quick");
var job = quick
    ? Job.Default.WithId("Quick").WithLaunchCount(1).WithWarmupCount(4).WithIterationCount(15).WithIterationTime(TimeInterval.FromMilliseconds(250))
    : Job.Default;
var config = ManualConfig.Create(DefaultConfig.Instance)
    .AddJob(job)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumn(StatisticColumn.Median, StatisticColumn.P95, new PercentileColumn(99), StatisticColumn.Max)
    .WithOptions(ConfigOptions.JoinSummary);
var bdnArgs = args.Where(a => a != "--quick").ToArray();
if (!bdnArgs.Contains("--filter")) bdnArgs = [.. bdnArgs, "--filter", "*"];
BenchmarkSwitcher.FromAssembly(typeof(PipelineBenchmarks).Assembly).Run(bdnArgs, config);

/// <summary>P99 of the iteration results (BenchmarkDotNet ships columns up to P95 and P100 only).</summary>
internal sealed class PercentileColumn(int percentile) : IColumn
{
    public string Id => $"P{percentile}";
    public string ColumnName => $"P{percentile}";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Statistics;
    public int PriorityInCategory => 10;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Time;
    public string Legend => $"Percentile {percentile} of the iteration means";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        return stats is null ? "NA" : $"{stats.Percentiles.Percentile(percentile) / 1000.0:N2} μs";
    }

    public override string ToString() => ColumnName;
}

/// <summary>
/// BenchmarkDotNet's percentiles are over iteration means; a budget such as "p99 &lt; 50 µs" is about single
/// requests. This times every call separately (after a warm-up, in this process) and reports the distribution.
/// </summary>
internal static class PerCallLatency
{
    public static void Run(int calls)
    {
        var benchmarks = new PipelineBenchmarks();
        benchmarks.Setup();
        // The stages alone: envelopes are parsed untimed in batches, then each Prepare is timed.
        var stages = new PipelineStagesBenchmarks();
        stages.Setup();
        var stagesLeft = 0;
        Func<int> Stages(Func<int> prepare) => () =>
        {
            if (stagesLeft == 0)
            {
                stages.ParseBatch();
                stagesLeft = PipelineStagesBenchmarks.Batch;
            }
            stagesLeft--;
            return prepare();
        };
        var cases = new (string Name, Func<int> Call, bool Batched)[]
        {
            ("JsonDocument.Parse alone (floor)", benchmarks.JsonDocumentParse, false),
            ("Parse (OpenAIInboundAdapter)", benchmarks.Parse, false),
            ("Prepare → OpenAI (parse+stages+write+hashes)", benchmarks.PrepareOpenAI, false),
            ("Prepare → Anthropic (parse+stages+write+hashes)", benchmarks.PrepareAnthropic, false),
            ("Stages → OpenAI (no parse)", Stages(stages.StagesOpenAI), true),
            ("Stages → Anthropic (no parse)", Stages(stages.StagesAnthropic), true),
        };
        Console.WriteLine($"Per-call latency over {calls:N0} calls each (after {calls / 5:N0} warm-up calls), Stopwatch per call, GC {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}.");
        Console.WriteLine("Stages rows: envelopes parsed beforehand in untimed batches of " + PipelineStagesBenchmarks.Batch + "; Gen0 GCs there include the batches' parsing.");
        Console.WriteLine();
        Console.WriteLine("CPU columns: this thread's CPU time per call (CLOCK_THREAD_CPUTIME_ID), which time slices lost to other processes do not inflate.");
        Console.WriteLine();
        Console.WriteLine("| Benchmark | Mean | P50 | P95 | P99 | P99.9 | Max | CPU mean | CPU P50 | CPU P99 | Allocated/call | Gen0 GCs |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        var ticks = new long[calls];
        var cpu = new long[calls];
        foreach (var (name, call, batched) in cases)
        {
            for (var i = 0; i < calls / 5; i++) call();
            stagesLeft = 0;
            GC.Collect();
            var gen0 = GC.CollectionCount(0);
            long allocated = 0;
            var sink = 0;
            for (var i = 0; i < calls; i++)
            {
                if (batched && stagesLeft == 0)
                {
                    stages.ParseBatch(); // untimed, and its allocations are not counted
                    stagesLeft = PipelineStagesBenchmarks.Batch;
                }
                var before = GC.GetAllocatedBytesForCurrentThread();
                var cpuStart = ThreadCpu.Nanoseconds();
                var start = Stopwatch.GetTimestamp();
                sink += call();
                ticks[i] = Stopwatch.GetTimestamp() - start;
                cpu[i] = ThreadCpu.Nanoseconds() - cpuStart;
                allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            }
            gen0 = GC.CollectionCount(0) - gen0;
            GC.KeepAlive(sink);
            Array.Sort(ticks);
            Array.Sort(cpu);
            double Us(long t) => t * 1_000_000.0 / Stopwatch.Frequency;
            double P(double q) => Us(ticks[Index(q)]);
            int Index(double q) => Math.Min(calls - 1, (int)Math.Ceiling(q * calls) - 1);
            var mean = Us(ticks.Sum()) / calls;
            var cpuCells = ThreadCpu.Available
                ? $"{cpu.Average() / 1000.0:F1} µs | {cpu[Index(0.50)] / 1000.0:F1} µs | {cpu[Index(0.99)] / 1000.0:F1} µs"
                : "– | – | –";
            Console.WriteLine($"| {name} | {mean:F1} µs | {P(0.50):F1} µs | {P(0.95):F1} µs | {P(0.99):F1} µs | {P(0.999):F1} µs | {Us(ticks[^1]):F1} µs | {cpuCells} | {allocated / calls / 1024.0:F1} KB | {gen0} |");
        }
    }
}

/// <summary>The calling thread's CPU time on Linux (clock_gettime(CLOCK_THREAD_CPUTIME_ID)); 0 elsewhere.</summary>
internal static class ThreadCpu
{
    private const int ClockThreadCpuTimeId = 3;

    public static bool Available { get; } = OperatingSystem.IsLinux() && Probe();

    public static long Nanoseconds() => Available && clock_gettime(ClockThreadCpuTimeId, out var ts) == 0 ? ts.Seconds * 1_000_000_000L + ts.Nanoseconds : 0;

    private static bool Probe()
    {
        try
        {
            return clock_gettime(ClockThreadCpuTimeId, out _) == 0;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

#pragma warning disable SYSLIB1054 // a DllImport keeps the project free of unsafe code; the call is not on a hot path of the product
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = false)]
    private static extern int clock_gettime(int clockId, out TimeSpec time);
#pragma warning restore SYSLIB1054
}
