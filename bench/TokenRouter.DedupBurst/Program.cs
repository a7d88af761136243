using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

// TokenRouter.DedupBurst — fires bursts of identical requests at one or more gateway replicas at the same moment and
// reports how many upstream calls in-flight deduplication saved (from the simulator's /sim/stats) and what it cost the
// followers in latency compared with the leader of their burst. See bench/README.md and bench/run-dedup-burst.sh.
//
//   burst run --gateways URL[,URL…] --key KEY [--sim-key SIM_KEY] --label NAME [--model sim-openai] [--clients 50] [--bursts 20]
//             [--stream true|false] [--latency-ms 300] [--results FILE]
//   burst report --results FILE --markdown FILE

const string Usage = """
    usage:
      TokenRouter.DedupBurst run --gateways URL[,URL...] --key KEY [--sim-key SIM_KEY] --label NAME [--model sim-openai]
                                 [--clients 50] [--bursts 20] [--stream true|false] [--latency-ms 300] [--results FILE]
      TokenRouter.DedupBurst report --results FILE --markdown FILE
    --sim-key: the simulators' key (the gateways' Simulator:ApiKey) for /sim/stats; defaults to the environment
               variable Simulator__ApiKey.
    """;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 1 : 0;
}
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 1; i + 1 < args.Length; i += 2)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal))
    {
        Console.Error.WriteLine($"Unexpected argument '{args[i]}'.\n{Usage}");
        return 1;
    }
    options[args[i][2..]] = args[i + 1];
}
string Opt(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;
int IntOpt(string name, int fallback) => int.Parse(Opt(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
var resultsPath = Opt("results", Path.Combine("bench", "results", "dedup-burst.runs.tmp"));

switch (args[0])
{
    case "run":
        {
            var gateways = Opt("gateways", "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(g => new Uri(g.TrimEnd('/') + "/")).ToArray();
            if (gateways.Length == 0 || gateways.Any(g => !g.IsLoopback))
            {
                Console.Error.WriteLine("--gateways: one or more loopback gateway URLs are required.");
                return 1;
            }
            var simKey = Opt("sim-key", Environment.GetEnvironmentVariable("Simulator__ApiKey") ?? "");
            if (simKey.Length == 0)
            {
                Console.Error.WriteLine("--sim-key (or Simulator__ApiKey) is required: /sim/stats needs the gateways' Simulator:ApiKey.");
                return 1;
            }
            var run = await Burst.RunAsync(new BurstSettings(
                gateways, Opt("key", ""), simKey, Opt("label", "run"), Opt("model", "sim-openai"), IntOpt("clients", 50), IntOpt("bursts", 20),
                bool.Parse(Opt("stream", "true")), IntOpt("latency-ms", 300)));
            await File.AppendAllTextAsync(resultsPath, JsonSerializer.Serialize(run) + "\n");
            Console.WriteLine(Report.Row(run));
            return run.Errors == 0 ? 0 : 2;
        }
    case "report":
        {
            var runs = File.ReadAllLines(resultsPath).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<RunResult>(l)!).ToList();
            var markdown = Report.Markdown(runs);
            File.WriteAllText(Opt("markdown", Path.Combine("bench", "results", "dedup-burst.md")), markdown);
            Console.WriteLine(markdown);
            return 0;
        }
    default:
        Console.Error.WriteLine(Usage);
        return 1;
}

internal sealed record BurstSettings(Uri[] Gateways, string Key, string SimulatorKey, string Label, string Model, int Clients, int Bursts, bool Stream, int LatencyMs);

/// <summary>One client's request within a burst; times are from the burst's common start.</summary>
internal sealed record Sample(int Burst, int Gateway, bool Deduplicated, int Status, double FirstByteMs, double TotalMs, string Body);

internal sealed record Percentiles(double P50, double P99, double Max);

internal sealed record RunResult(
    string Label, int Replicas, bool Stream, int Clients, int Bursts, int LatencyMs, int Requests, int Errors, long UpstreamCalls,
    int Leaders, int Followers, int MismatchedBodies, Percentiles LeaderTotal, Percentiles FollowerTotal, Percentiles LeaderFirstByte,
    Percentiles FollowerFirstByte, Percentiles AddedTotal, Percentiles AddedFirstByte, Percentiles AddedTotalOtherReplica,
    int OtherReplicaFollowers, double WallSeconds);

internal static class Burst
{
    public static async Task<RunResult> RunAsync(BurstSettings s)
    {
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = int.MaxValue,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            AutomaticDecompression = DecompressionMethods.None,
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(2) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", s.Key);

        // Open every connection first, so a burst measures the gateway and not TCP set-up.
        var perGateway = (s.Clients + s.Gateways.Length - 1) / s.Gateways.Length;
        await Task.WhenAll(s.Gateways.SelectMany(g => Enumerable.Range(0, perGateway).Select(async _ =>
        {
            using var r = await http.GetAsync(new Uri(g, "v1/models"));
            r.EnsureSuccessStatusCode();
        })));

        var run = Guid.NewGuid().ToString("N")[..8];
        var samples = new List<Sample>();
        long before = 0;
        var wall = new Stopwatch();
        // Burst -1 warms the gateways' code paths up (JIT, pools) and is not counted.
        for (var burst = -1; burst < s.Bursts; burst++)
        {
            if (burst == 0)
            {
                samples.Clear();
                before = await UpstreamCallsAsync(http, s.Gateways, s.SimulatorKey);
                wall.Start();
            }
            var body = JsonSerializer.Serialize(new
            {
                model = s.Model,
                stream = s.Stream,
                max_completion_tokens = 64,
                messages = new object[]
                {
                    new { role = "system", content = "You are a terse assistant. Answer in one sentence." },
                    new { role = "user", content = $"Burst {run}-{burst}: what is the capital of France, and why is it famous?" },
                },
            });
            var index = burst;
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            long started = 0;
            var tasks = Enumerable.Range(0, s.Clients).Select(i => Task.Run(async () =>
            {
                await start.Task;
                return await SendAsync(http, s.Gateways, i % s.Gateways.Length, body, s.LatencyMs, index, () => started);
            })).ToArray();
            await Task.Delay(50); // every client task is parked on the start signal
            started = Stopwatch.GetTimestamp();
            start.SetResult();
            samples.AddRange(await Task.WhenAll(tasks));
            await Task.Delay(100); // the next burst must not join this one
        }
        wall.Stop();
        var upstream = await UpstreamCallsAsync(http, s.Gateways, s.SimulatorKey) - before;

        var ok = samples.Where(x => x.Status == 200).ToList();
        var leaders = ok.Where(x => !x.Deduplicated).ToList();
        var followers = ok.Where(x => x.Deduplicated).ToList();
        var added = new List<double>();
        var addedFirst = new List<double>();
        var addedOther = new List<double>();
        var mismatched = 0;
        foreach (var group in ok.GroupBy(x => x.Burst))
        {
            var leader = group.Where(x => !x.Deduplicated).OrderBy(x => x.TotalMs).FirstOrDefault();
            if (leader is null) continue;
            foreach (var f in group.Where(x => x.Deduplicated))
            {
                added.Add(f.TotalMs - leader.TotalMs);
                if (f.Gateway != leader.Gateway) addedOther.Add(f.TotalMs - leader.TotalMs);
                addedFirst.Add(f.FirstByteMs - leader.FirstByteMs);
                if (f.Body != leader.Body) mismatched++;
            }
        }
        return new RunResult(s.Label, s.Gateways.Length, s.Stream, s.Clients, s.Bursts, s.LatencyMs, samples.Count,
            samples.Count - ok.Count, upstream, leaders.Count, followers.Count, mismatched,
            Stats(leaders.Select(x => x.TotalMs)), Stats(followers.Select(x => x.TotalMs)),
            Stats(leaders.Select(x => x.FirstByteMs)), Stats(followers.Select(x => x.FirstByteMs)),
            Stats(added), Stats(addedFirst), Stats(addedOther), addedOther.Count, wall.Elapsed.TotalSeconds);
    }

    private static async Task<Sample> SendAsync(HttpClient http, Uri[] gateways, int gateway, string body, int latencyMs, int burst, Func<long> started)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateways[gateway], "v1/chat/completions")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-sim-latency-ms", latencyMs.ToString(CultureInfo.InvariantCulture));
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var deduplicated = response.Headers.TryGetValues("x-tokenrouter-deduplicated", out var d) && d.Contains("true");
            await using var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[16 * 1024];
            var text = new MemoryStream();
            double first = -1;
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0)
            {
                if (first < 0) first = Stopwatch.GetElapsedTime(started()).TotalMilliseconds;
                text.Write(buffer, 0, n);
            }
            var total = Stopwatch.GetElapsedTime(started()).TotalMilliseconds;
            return new Sample(burst, gateway, deduplicated, (int)response.StatusCode, first < 0 ? total : first, total, Normalize(Encoding.UTF8.GetString(text.ToArray())));
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return new Sample(burst, gateway, false, 0, 0, 0, ex.Message);
        }
    }

    /// <summary>The answer's content: what must be identical for every client of a burst.</summary>
    private static string Normalize(string body)
    {
        if (!body.StartsWith("data:", StringComparison.Ordinal))
            return JsonNode.Parse(body)?["choices"]?[0]?["message"]?["content"]?.GetValue<string>() ?? body;
        var text = new StringBuilder();
        foreach (var line in body.Split('\n'))
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
            if (JsonNode.Parse(line[6..])?["choices"] is JsonArray { Count: > 0 } choices && choices[0]?["delta"]?["content"] is JsonValue v)
                text.Append(v.GetValue<string>());
        }
        return text.Append(body.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal) ? "|done" : "|unfinished").ToString();
    }

    private static async Task<long> UpstreamCallsAsync(HttpClient http, Uri[] gateways, string simulatorKey)
    {
        long total = 0;
        foreach (var g in gateways)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(g, "sim/stats"));
            request.Headers.Authorization = new("Bearer", simulatorKey); // the simulator's key, not the client key
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            total += doc.RootElement.GetProperty("total").GetInt64();
        }
        return total;
    }

    private static Percentiles Stats(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return new Percentiles(0, 0, 0);
        double At(double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
        return new Percentiles(At(0.50), At(0.99), sorted[^1]);
    }
}

internal static class Report
{
    private static string Ms(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);

    public static string Row(RunResult r) =>
        $"| {r.Label} | {r.Replicas} | {(r.Stream ? "stream" : "json")} | {r.Requests} | {r.Errors} | {r.UpstreamCalls} | " +
        $"{r.Requests - r.UpstreamCalls} ({(r.Requests == 0 ? 0 : 100.0 * (r.Requests - r.UpstreamCalls) / r.Requests).ToString("0.0", CultureInfo.InvariantCulture)} %) | " +
        $"{r.Leaders}/{r.Followers} | {Ms(r.LeaderFirstByte.P50)} / {Ms(r.LeaderFirstByte.P99)} | {Ms(r.FollowerFirstByte.P50)} / {Ms(r.FollowerFirstByte.P99)} | " +
        $"{Ms(r.LeaderTotal.P50)} / {Ms(r.LeaderTotal.P99)} | {Ms(r.FollowerTotal.P50)} / {Ms(r.FollowerTotal.P99)} | " +
        $"{Ms(r.AddedFirstByte.P50)} / {Ms(r.AddedFirstByte.P99)} | {Ms(r.AddedTotal.P50)} / {Ms(r.AddedTotal.P99)} | " +
        (r.OtherReplicaFollowers == 0 ? "– | " : $"{Ms(r.AddedTotalOtherReplica.P50)} / {Ms(r.AddedTotalOtherReplica.P99)} ({r.OtherReplicaFollowers}) | ") +
        $"{r.MismatchedBodies} |";

    public static string Markdown(IReadOnlyList<RunResult> runs)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| run | replicas | mode | requests | errors | upstream calls | calls saved | leaders/followers | leader first byte p50 / p99 (ms) | follower first byte p50 / p99 (ms) | leader total p50 / p99 (ms) | follower total p50 / p99 (ms) | added first byte p50 / p99 (ms) | added total p50 / p99 (ms) | added total, followers on the other replica p50 / p99 (ms) (n) | bodies ≠ leader |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in runs) sb.AppendLine(Row(r));
        return sb.ToString();
    }
}
