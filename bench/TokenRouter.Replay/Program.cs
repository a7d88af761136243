using System.Globalization;
using TokenRouter.Replay;

// TokenRouter.Replay — replays the recorded agent sessions through a gateway (or straight to its simulator) and
// reports what the upstream cache made of them. See bench/README.md.
//
//   replay run --gateway http://127.0.0.1:5199 --key sk-… [--sim-key sk-sim-…] --mode direct|best|gateway [--label NAME]
//              [--vendors openai,deepseek,anthropic] [--sessions N|all (default)] [--concurrency 12] [--timeout 30]
//              [--max-requests 6000] [--deadline 240] [--results bench/results/cache-replay.runs.tmp] [--workload PATH]
//   replay report [--results FILE] [--markdown bench/results/cache-replay.md]

const string Usage = """
    usage:
      TokenRouter.Replay run --gateway URL [--key KEY] [--sim-key SIM_KEY] --mode direct|best|gateway [--label NAME]
                             [--vendors openai,deepseek,anthropic] [--sessions N|all] [--concurrency N]
                             [--timeout SECONDS] [--max-requests N] [--deadline SECONDS] [--results FILE] [--workload PATH]
      TokenRouter.Replay report [--results FILE] [--markdown FILE]
      TokenRouter.Replay sample --position I --request J [--vendor openai|deepseek|anthropic] [--mode direct|best] [--sessions N|all]
    modes: direct  = clients straight to the gateway's /sim routes (no gateway pipeline)
           best    = the canonical, cache-ideal form straight to /sim (ideal Anthropic breakpoints)
           gateway = clients through /v1/chat/completions and /v1/messages (label it with the switches in force)
    --sim-key: the simulator's key (the gateway's Simulator:ApiKey) for /sim/reset, /sim/stats and the direct modes;
               defaults to the environment variable Simulator__ApiKey.
    """;

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 1 : 0;
}

var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 1; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"Unexpected argument '{args[i]}'.\n{Usage}");
        return 1;
    }
    options[args[i][2..]] = args[++i];
}

string Opt(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;
int IntOpt(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
var resultsPath = Opt("results", Path.Combine("bench", "results", "cache-replay.runs.tmp"));

try
{
    switch (args[0])
    {
        case "run":
            {
                var mode = Opt("mode", "");
                if (mode is not ("direct" or "best" or "gateway")) throw new ArgumentException("--mode must be direct, best or gateway.");
                if (!options.TryGetValue("gateway", out var gateway)) throw new ArgumentException("--gateway URL is required (the simulator lives in the gateway process).");
                var uri = new Uri(gateway.TrimEnd('/') + "/");
                if (!uri.IsLoopback) throw new ArgumentException($"Refusing a non-loopback gateway address {uri}: the replay only talks to a local gateway.");
                var vendors = Opt("vendors", string.Join(',', Runner.AllVendors)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (vendors.FirstOrDefault(v => !Runner.AllVendors.Contains(v)) is { } bad) throw new ArgumentException($"Unknown vendor '{bad}'.");
                var sessions = Opt("sessions", "all") is "all" ? 0 : IntOpt("sessions", 0);
                var concurrency = Math.Clamp(IntOpt("concurrency", 12), 1, 64);
                if (mode == "gateway" && !options.ContainsKey("key")) throw new ArgumentException("--key is required in gateway mode.");
                var simKey = Opt("sim-key", Environment.GetEnvironmentVariable("Simulator__ApiKey") ?? "");
                if (simKey.Length == 0)
                    throw new ArgumentException("--sim-key (or Simulator__ApiKey) is required: the simulator's /sim routes need the gateway's Simulator:ApiKey.");
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(resultsPath))!);
                var settings = new RunSettings(
                    uri,
                    Opt("key", ""),
                    simKey,
                    mode,
                    Opt("label", mode),
                    vendors,
                    sessions,
                    concurrency,
                    TimeSpan.FromSeconds(Math.Clamp(IntOpt("timeout", 30), 1, 600)),
                    Math.Max(1, IntOpt("max-requests", 6000)),
                    TimeSpan.FromSeconds(Math.Clamp(IntOpt("deadline", 240), 5, 3600)),
                    resultsPath,
                    options.GetValueOrDefault("workload"));
                return await new Runner(settings).RunAsync();
            }
        case "sample":
            {
                // The body one client position sends for one request (debugging aid): positions are as in a run of --sessions.
                var all = TokenRouter.Bench.WorkloadFile.Load(TokenRouter.Bench.WorkloadFile.Locate(options.GetValueOrDefault("workload")));
                var selected = Runner.Select(all, Opt("sessions", "all") is "all" ? 0 : IntOpt("sessions", 0));
                var position = IntOpt("position", 0);
                var client = (ClientProgram)(position % 4);
                var session = ClientSession.Create(selected[position], Opt("mode", "direct") == "best" ? ClientProgram.Canonical : client,
                    client == ClientProgram.B && position / 4 % 2 == 0);
                var request = Math.Clamp(IntOpt("request", 0), 0, session.RequestPoints.Count - 1);
                var k = session.RequestPoints[request];
                var previousK = request == 0 ? 0 : session.RequestPoints[request - 1];
                var vendor = Opt("vendor", "openai");
                var body = vendor == "anthropic"
                    ? RequestFactory.Anthropic(session, k, previousK, "sim-anthropic", Opt("mode", "direct") == "best")
                    : RequestFactory.OpenAI(session, k, previousK, "sim-" + vendor);
                Console.Error.WriteLine($"{selected[position].Id}: client {session.Client}, request {request + 1}/{session.RequestPoints.Count} (turns[:{k}]), " +
                                        $"grows at turn {(session.AddedTool is null ? "–" : session.GrowAt.ToString(CultureInfo.InvariantCulture))}");
                Console.WriteLine(System.Text.Encoding.UTF8.GetString(body));
                return 0;
            }
        case "report":
            {
                var markdown = Report.Render(resultsPath);
                Console.WriteLine(markdown);
                if (options.TryGetValue("markdown", out var md))
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(md))!);
                    await File.WriteAllTextAsync(md, markdown);
                }
                return 0;
            }
        default:
            Console.Error.WriteLine(Usage);
            return 1;
    }
}
catch (Exception e) when (e is ArgumentException or FormatException or FileNotFoundException or InvalidOperationException or HttpRequestException)
{
    Console.Error.WriteLine($"replay: {e.Message}");
    return 1;
}
