using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using TokenRouter.StreamLoad;

// TokenRouter.StreamLoad — many concurrent streaming requests through one gateway against a slow fake provider.
// See bench/run-stream-load.sh, which starts the provider, the gateway and this load generator with raised file limits.
//
//   StreamLoad provider --port 18090 [--chunks 20] [--interval-ms 100] [--latency-ms 5000]
//       An OpenAI-compatible /v1/chat/completions that streams `chunks` chunks `interval-ms` apart after `latency-ms`,
//       each carrying its send time (Stopwatch ticks; CLOCK_MONOTONIC, shared by processes on the machine), then
//       usage and [DONE]. GET /stats: calls and peak concurrent streams.
//   StreamLoad run --gateway URL [--endpoint URL] --key KEY --provider URL --gateway-pid PID --streams 10000 [--ramp-seconds 5]
//       [--http2 true] [--identical false] [--label NAME] [--out FILE]
//       Opens `streams` streaming requests, started evenly over `ramp-seconds`, and reads them all to the end; the
//       requests go to --endpoint (default --gateway; e.g. the gateway's HTTP/2-only listener), /metrics to --gateway.

var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 1; i + 1 < args.Length; i += 2) options[args[i].TrimStart('-')] = args[i + 1];
string Opt(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;
int IntOpt(string name, int fallback) => int.Parse(Opt(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

switch (args.FirstOrDefault())
{
    case "provider":
        await SlowProvider.RunAsync(IntOpt("port", 18090), IntOpt("chunks", 20), IntOpt("interval-ms", 100), IntOpt("latency-ms", 5000));
        return 0;
    case "run":
        {
            var settings = new LoadSettings(
                new Uri(Opt("endpoint", Opt("gateway", "http://127.0.0.1:5320")).TrimEnd('/') + "/v1/chat/completions"),
                Opt("key", ""),
                new Uri(Opt("provider", "http://127.0.0.1:18090").TrimEnd('/') + "/stats"),
                new Uri(Opt("gateway", "http://127.0.0.1:5320").TrimEnd('/') + "/metrics"),
                IntOpt("gateway-pid", 0),
                IntOpt("streams", 10_000),
                IntOpt("ramp-seconds", 5),
                bool.Parse(Opt("http2", "true")),
                bool.Parse(Opt("identical", "false")),
                IntOpt("chunks", 20),
                Opt("label", "run"));
            var result = await LoadRun.RunAsync(settings);
            var row = result.MarkdownRow();
            Console.WriteLine(row);
            if (options.TryGetValue("out", out var path)) await File.AppendAllTextAsync(path, row + "\n");
            return result.Errors == 0 ? 0 : 2;
        }
    default:
        Console.Error.WriteLine("usage: StreamLoad provider --port P [--chunks 20 --interval-ms 100 --latency-ms 5000] | StreamLoad run --gateway URL --key KEY --provider URL --gateway-pid PID [--streams 10000 --ramp-seconds 5 --http2 true --identical false --label NAME --out FILE]");
        return 1;
}

namespace TokenRouter.StreamLoad
{
    internal sealed record LoadSettings(
        Uri Endpoint, string Key, Uri ProviderStats, Uri GatewayMetrics, int GatewayPid, int Streams, int RampSeconds, bool Http2,
        bool Identical, int Chunks, string Label);

    internal sealed record LoadResult(
        LoadSettings Settings, int Ok, int Errors, string FirstErrors, int PeakOpen, long ProviderCalls, long ProviderPeak, int Deduplicated,
        double WallSeconds, double P50AddedMs, double P99AddedMs, double MaxAddedMs, double PeakRssMb, double PeakHeapMb, double PeakCommittedMb,
        double CpuSeconds, double PeakCpuCores, int PeakThreads)
    {
        public string MarkdownRow() => string.Create(CultureInfo.InvariantCulture,
            $"| {Settings.Label} | {Settings.Streams:N0} | {(Settings.Http2 ? "HTTP/2" : "HTTP/1.1")} | {PeakOpen:N0} | {Ok:N0} | {Errors:N0}{(FirstErrors.Length > 0 ? " (" + FirstErrors + ")" : "")} | {ProviderCalls:N0} | {Deduplicated:N0} | {P50AddedMs:F1} / {P99AddedMs:F1} / {MaxAddedMs:F0} ms | {PeakRssMb:F0} MB | {PeakHeapMb:F0} MB ({PeakCommittedMb:F0} MB committed) | {CpuSeconds:F1} s ({CpuSeconds * 1000 / Math.Max(1, Settings.Streams):F2} ms/stream), peak {PeakCpuCores:F2} cores | {PeakThreads} | {WallSeconds:F1} s |");
    }

    /// <summary>The load generator: a bounded set of streaming requests, a per-chunk delay sample and a sampler of the
    /// gateway process (/proc and /metrics).</summary>
    internal static class LoadRun
    {
        public static async Task<LoadResult> RunAsync(LoadSettings s)
        {
            using var handler = new SocketsHttpHandler
            {
                MaxConnectionsPerServer = int.MaxValue,
                EnableMultipleHttp2Connections = true,
                UseProxy = false,
                UseCookies = false,
                PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
                ConnectTimeout = TimeSpan.FromSeconds(60),
            };
            using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
            using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            var delays = new long[s.Streams * (s.Chunks + 2)];
            var delayCount = 0;
            var open = 0;
            var peakOpen = 0;
            var ok = 0;
            var errors = 0;
            var deduplicated = 0;
            var errorKinds = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
            var (callsBefore, _) = await ProviderStatsAsync(probe, s.ProviderStats);
            var sampler = new GatewaySampler(s.GatewayPid, probe, s.GatewayMetrics);
            using var stop = new CancellationTokenSource();
            var sampling = sampler.RunAsync(stop.Token);
            var wall = Stopwatch.StartNew();

            async Task OneAsync(int i)
            {
                var content = s.Identical ? "Tell me a story about the same lighthouse." : $"Tell me a story about lighthouse number {i}.";
                var body = $$"""{"model":"gpt-4o","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"{{content}}"}]}""";
                using var request = new HttpRequestMessage(HttpMethod.Post, s.Endpoint)
                {
                    Content = new StringContent(body, Encoding.UTF8, "application/json"),
                    Version = s.Http2 ? HttpVersion.Version20 : HttpVersion.Version11,
                    VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                };
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + s.Key);
                var now = Interlocked.Increment(ref open);
                int seen;
                while ((seen = Volatile.Read(ref peakOpen)) < now && Interlocked.CompareExchange(ref peakOpen, now, seen) != seen)
                {
                }
                try
                {
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Fail($"HTTP {(int)response.StatusCode}");
                        return;
                    }
                    if (response.Headers.TryGetValues("x-tokenrouter-deduplicated", out var d) && d.Contains("true")) Interlocked.Increment(ref deduplicated);
                    await using var stream = await response.Content.ReadAsStreamAsync();
                    using var reader = new StreamReader(stream, Encoding.UTF8, false, 4096);
                    var chunks = 0;
                    var done = false;
                    while (await reader.ReadLineAsync() is { } line)
                    {
                        var arrived = Stopwatch.GetTimestamp();
                        if (line == "data: [DONE]")
                        {
                            done = true;
                            continue;
                        }
                        var at = line.IndexOf("ts:", StringComparison.Ordinal);
                        if (at < 0) continue;
                        var end = at + 3;
                        while (end < line.Length && char.IsAsciiDigit(line[end])) end++;
                        var sent = long.Parse(line.AsSpan(at + 3, end - at - 3), CultureInfo.InvariantCulture);
                        var slot = Interlocked.Increment(ref delayCount) - 1;
                        if (slot < delays.Length) delays[slot] = arrived - sent;
                        chunks++;
                    }
                    if (!done || chunks < s.Chunks) Fail($"stream ended after {chunks} chunks{(done ? "" : " without [DONE]")}");
                    else Interlocked.Increment(ref ok);
                }
                catch (Exception ex)
                {
                    Fail(ex.GetType().Name + ": " + ex.Message.Split('\n')[0]);
                }
                finally
                {
                    Interlocked.Decrement(ref open);
                }
            }

            void Fail(string kind)
            {
                Interlocked.Increment(ref errors);
                errorKinds.AddOrUpdate(kind.Length > 80 ? kind[..80] : kind, 1, (_, n) => n + 1);
            }

            // Bounded: exactly `Streams` requests, started at an even pace over the ramp (never a retry or a second wave).
            var tasks = new Task[s.Streams];
            var pace = TimeSpan.FromSeconds(s.RampSeconds) / Math.Max(1, s.Streams);
            for (var i = 0; i < s.Streams; i++)
            {
                var due = pace * i;
                var wait = due - wall.Elapsed;
                if (wait > TimeSpan.FromMilliseconds(5)) await Task.Delay(wait);
                var index = i;
                tasks[i] = Task.Run(() => OneAsync(index));
            }
            await Task.WhenAll(tasks);
            wall.Stop();
            await stop.CancelAsync();
            await sampling;

            var n = Math.Min(delayCount, delays.Length);
            var sorted = delays.AsSpan(0, n).ToArray();
            Array.Sort(sorted);
            double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
            double P(double q) => n == 0 ? double.NaN : Ms(sorted[Math.Min(n - 1, (int)Math.Ceiling(q * n) - 1)]);
            var (calls, peak) = await ProviderStatsAsync(probe, s.ProviderStats);
            var firstErrors = string.Join("; ", errorKinds.OrderByDescending(e => e.Value).Take(3).Select(e => $"{e.Value}× {e.Key}"));
            return new LoadResult(s, ok, errors, firstErrors, peakOpen, calls - callsBefore, peak, deduplicated, wall.Elapsed.TotalSeconds,
                P(0.50), P(0.99), n == 0 ? double.NaN : Ms(sorted[^1]), sampler.PeakRssMb, sampler.PeakHeapMb, sampler.PeakCommittedMb,
                sampler.CpuSeconds, sampler.PeakCpuCores, sampler.PeakThreads);
        }

        private static async Task<(long Calls, long Peak)> ProviderStatsAsync(HttpClient probe, Uri stats)
        {
            try
            {
                var text = (await probe.GetStringAsync(stats)).Split(' ');
                return (long.Parse(text[0], CultureInfo.InvariantCulture), long.Parse(text[1], CultureInfo.InvariantCulture));
            }
            catch (Exception ex) when (ex is HttpRequestException or FormatException or IndexOutOfRangeException or TaskCanceledException)
            {
                return (-1, -1);
            }
        }
    }

    /// <summary>Samples the gateway process: RSS, threads and CPU from /proc every 250 ms, the managed heap from its /metrics
    /// (the .NET runtime meter the gateway exports) every second.</summary>
    internal sealed class GatewaySampler(int pid, HttpClient probe, Uri metrics)
    {
        public double PeakRssMb { get; private set; }
        public double PeakHeapMb { get; private set; }
        public double PeakCommittedMb { get; private set; }
        public double CpuSeconds { get; private set; }
        public double PeakCpuCores { get; private set; }
        public int PeakThreads { get; private set; }

        public async Task RunAsync(CancellationToken stop)
        {
            if (pid <= 0) return;
            var tick = 100.0; // USER_HZ on Linux
            var startTicks = CpuTicks();
            var lastTicks = startTicks;
            var last = Stopwatch.GetTimestamp();
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(250, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                        PeakRssMb = Math.Max(PeakRssMb, Kb(line) / 1024.0);
                    else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                        PeakThreads = Math.Max(PeakThreads, int.Parse(line[8..].Trim(), CultureInfo.InvariantCulture));
                }
                var ticks = CpuTicks();
                var now = Stopwatch.GetTimestamp();
                var seconds = (double)(now - last) / Stopwatch.Frequency;
                if (seconds > 0.2) PeakCpuCores = Math.Max(PeakCpuCores, (ticks - lastTicks) / tick / seconds);
                (lastTicks, last) = (ticks, now);
                CpuSeconds = (ticks - startTicks) / tick;
                if (++n % 4 == 0) await ScrapeHeapAsync();
            }
            await ScrapeHeapAsync();
            CpuSeconds = (CpuTicks() - startTicks) / tick;
        }

        private async Task ScrapeHeapAsync()
        {
            try
            {
                double heap = 0, committed = 0;
                foreach (var line in (await probe.GetStringAsync(metrics)).Split('\n'))
                {
                    if (line.StartsWith('#') || line.Length == 0) continue;
                    var name = line[..line.IndexOfAny(['{', ' '])];
                    var value = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
                    // .NET 9+ runtime meter (dotnet_gc_last_collection_heap_size_bytes, per generation) or the older
                    // OpenTelemetry runtime instrumentation (process_runtime_dotnet_gc_heap_size_bytes).
                    if (name is "dotnet_gc_last_collection_heap_size_bytes" or "process_runtime_dotnet_gc_heap_size_bytes") heap += value;
                    else if (name is "dotnet_gc_last_collection_memory_committed_size_bytes" or "process_runtime_dotnet_gc_committed_memory_size_bytes") committed += value;
                }
                PeakHeapMb = Math.Max(PeakHeapMb, heap / 1024 / 1024);
                PeakCommittedMb = Math.Max(PeakCommittedMb, committed / 1024 / 1024);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or FormatException or ArgumentOutOfRangeException)
            {
                // A scrape that times out under load is skipped; /proc still has the peak RSS.
            }
        }

        private long CpuTicks()
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }

        private static double Kb(string line) => double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
