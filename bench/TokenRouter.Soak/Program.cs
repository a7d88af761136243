using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using StackExchange.Redis;
using TokenRouter.Bench;
using TokenRouter.Soak;

// Soak client: drives mixed traffic at gateway replicas that share Redis (usage → Admin → PostgreSQL), samples memory,
// sockets, Redis and the ledger while it runs, then waits for the ledger to catch up and checks it against what was
// served, request id by request id. bench/run-soak.sh starts the servers and runs this; exit 1 when a check fails.
var options = Args.Parse(args);
var sessions = WorkloadFile.Load(WorkloadFile.Locate(options.Get("workload")));
var gateways = options.Get("gateways")!.Split(',').Select(url => new HttpClient(new SocketsHttpHandler
{
    PooledConnectionLifetime = TimeSpan.FromMinutes(2),
    MaxConnectionsPerServer = 64,
})
{ BaseAddress = new Uri(url.TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(60) }).ToArray();
var pids = options.Get("pids")!.Split(',').Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
var duration = TimeSpan.FromMinutes(double.Parse(options.Get("minutes") ?? "30", CultureInfo.InvariantCulture));
var sampleEvery = TimeSpan.FromSeconds(double.Parse(options.Get("sample-seconds") ?? (duration.TotalMinutes >= 10 ? "60" : "15"), CultureInfo.InvariantCulture));
var workers = int.Parse(options.Get("workers") ?? "12", CultureInfo.InvariantCulture);
var maxBody = long.Parse(options.Get("max-body-bytes") ?? "262144", CultureInfo.InvariantCulture);
var output = options.Get("out") ?? "bench/results/soak.md";

var redis = await ConnectionMultiplexer.ConnectAsync(options.Get("redis")!);
await using var sampler = new SoakSampler(pids, gateways, redis, NpgsqlDataSource.Create(options.Get("postgres")!));
var tally = new SoakTally();
var traffic = new SoakTraffic(gateways, options.Get("key")!, new SoakRequests(sessions, maxBody), tally);

Console.WriteLine($"Soak: {duration.TotalMinutes} min, {workers} workers, {gateways.Length} gateways, sampling every {sampleEvery.TotalSeconds} s");
var clock = Stopwatch.StartNew();
var samples = new List<SoakSample> { await sampler.SampleAsync(TimeSpan.Zero, 0) };
using (var stop = new CancellationTokenSource(duration))
{
    var load = traffic.RunAsync(workers, burstEvery: TimeSpan.FromSeconds(5), disconnectEvery: TimeSpan.FromSeconds(3), stop.Token);
    using var timer = new PeriodicTimer(sampleEvery);
    try
    {
        while (await timer.WaitForNextTickAsync(stop.Token))
        {
            var sample = await sampler.SampleAsync(clock.Elapsed, tally.Sent);
            samples.Add(sample);
            Console.WriteLine(Report.Row(sample));
        }
    }
    catch (OperationCanceledException)
    {
    }
    await load;
}
var loadTime = clock.Elapsed;

// The ledger catches up: the gateways flush their buffers, Admin drains the stream.
var deadline = Stopwatch.StartNew();
long rows;
while ((rows = await sampler.LedgerRowsAsync()) < tally.Served.Count && deadline.Elapsed < TimeSpan.FromSeconds(90))
    await Task.Delay(500);
await Task.Delay(TimeSpan.FromSeconds(3)); // anything beyond what was served would show up now
samples.Add(await sampler.SampleAsync(clock.Elapsed, tally.Sent));
var ledger = await sampler.LedgerRequestIdsAsync();
var missing = tally.Served.Keys.Count(id => !ledger.Contains(id));
var extra = ledger.Count(id => !tally.Served.ContainsKey(id));

var markdown = Report.Markdown(samples, tally, loadTime, workers, gateways.Length, missing, extra, ledger.Count);
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
await File.WriteAllTextAsync(output, markdown);
Console.WriteLine(markdown);
foreach (var failure in tally.Unexpected) Console.Error.WriteLine("unexpected: " + failure);

var ok = missing == 0 && extra == 0 && tally.UnexpectedCount == 0 && tally.Served.Count > 0;
Console.WriteLine(ok ? "Soak passed." : "Soak FAILED: see the checks above.");
return ok ? 0 : 1;

internal static class Report
{
    public static string Row(SoakSample s) =>
        string.Create(CultureInfo.InvariantCulture,
            $"| {s.At.TotalMinutes:F1} | {s.Sent:N0} | {string.Join(" / ", s.RssKiB.Select(k => (k / 1024.0).ToString("F0", CultureInfo.InvariantCulture)))} | " +
            $"{string.Join(" / ", s.HeapBytes.Select(h => (h / 1048576.0).ToString("F0", CultureInfo.InvariantCulture)))} | " +
            $"{string.Join(" / ", s.Sockets)} | {s.RedisUsedBytes / 1048576.0:F1} | {s.UsageStreamLength:N0} | {s.LedgerRows:N0} |");

    public static string Markdown(List<SoakSample> samples, SoakTally tally, TimeSpan loadTime, int workers, int gateways,
        int missing, int extra, int ledgerRows)
    {
        var b = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        b.AppendLine(inv, $"Load: {loadTime.TotalMinutes:F1} min, {workers} workers + a burst of 8 identical requests every 5 s + a client hanging up mid-stream every 3 s, over {gateways} gateway replicas; {tally.Sent:N0} requests ({tally.Sent / loadTime.TotalSeconds:F0}/s), {tally.Hostile:N0} hostile, {tally.Disconnects:N0} cut mid-stream.");
        b.AppendLine();
        b.AppendLine("| minute | requests sent | gateway RSS MiB (a / b) | GC heap after last GC, MiB (a / b) | open sockets (a / b) | Redis used MiB | usage stream length | ledger rows |");
        b.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var s in samples) b.AppendLine(Row(s));
        b.AppendLine();

        // A server GC's RSS saws up and down with its collections, so growth shows in the floors: the lowest RSS and
        // live heap of each third of the load after warm-up (the first sixth) should not climb.
        var underLoad = samples.Skip(1).Take(samples.Count - 2).Where(s => s.At >= loadTime / 6).ToList();
        var thirds = Enumerable.Range(0, 3)
            .Select(t => underLoad.Where(s => s.At >= loadTime / 6 + (loadTime * 5 / 6) * t / 3 && s.At < loadTime / 6 + (loadTime * 5 / 6) * (t + 1) / 3).ToList())
            .Where(t => t.Count > 0).ToList();
        for (var g = 0; g < gateways && thirds.Count > 0; g++)
        {
            var gateway = g;
            var rss = string.Join(", ", thirds.Select(t => $"{t.Min(s => s.RssKiB[gateway]) / 1024.0:F0}–{t.Max(s => s.RssKiB[gateway]) / 1024.0:F0}"));
            var heap = string.Join(", ", thirds.Select(t => $"{t.Min(s => s.HeapBytes[gateway]) / 1048576.0:F0}–{t.Max(s => s.HeapBytes[gateway]) / 1048576.0:F0}"));
            var sockets = string.Join(", ", thirds.Select(t => $"{t.Min(s => s.Sockets[gateway])}–{t.Max(s => s.Sockets[gateway])}"));
            b.AppendLine(inv, $"- Gateway {(char)('a' + g)}, by thirds of the load after warm-up: RSS {rss} MiB; GC heap after last GC {heap} MiB; sockets {sockets}.");
        }
        b.AppendLine(inv, $"- Ledger: {tally.Served.Count:N0} requests served (200, or cut mid-stream by the client) → {ledgerRows:N0} rows; missing {missing}, extra {extra}.");
        b.AppendLine(inv, $"- Unexpected answers (a served request not 200, a hostile one not 4xx, a transport error): {tally.UnexpectedCount}.");
        b.AppendLine();
        b.AppendLine("| request kind and status | count |");
        b.AppendLine("|---|---:|");
        foreach (var (kind, count) in tally.Statuses.OrderBy(p => p.Key, StringComparer.Ordinal)) b.AppendLine(inv, $"| {kind} | {count:N0} |");
        return b.ToString();
    }
}

internal sealed class Args(Dictionary<string, string> values)
{
    public string? Get(string name) => values.GetValueOrDefault(name);

    public static Args Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2) values[args[i].TrimStart('-')] = args[i + 1];
        return new Args(values);
    }
}
