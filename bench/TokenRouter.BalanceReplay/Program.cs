using System.Globalization;
using TokenRouter.BalanceReplay;
using TokenRouter.Bench;

// TokenRouter.BalanceReplay — the provider cache hit ratio of real agent sessions when one provider has several keys in
// several organisations (each with a prefix cache of its own), for each way of spreading requests over them.
// In process, deterministic, on a virtual clock: no HTTP, no sleeping. See bench/README.md ("Cache-aware balancing").
//
//   dotnet run -c Release --project bench/TokenRouter.BalanceReplay -- [--sessions N|all] [--concurrency 32]
//       [--turn-seconds 30] [--keys 4] [--markdown bench/results/balance-replay.md] [--workload PATH]

var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 0; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"Unexpected argument '{args[i]}'. Options: --sessions N|all --concurrency N --turn-seconds S --keys N --markdown FILE --workload PATH");
        return 1;
    }
    options[args[i][2..]] = args[++i];
}

var workload = WorkloadFile.Locate(options.GetValueOrDefault("workload"));
var sessions = WorkloadFile.Load(workload);
if (options.GetValueOrDefault("sessions", "all") is var n and not "all")
{
    // A spread-out subset: every k-th session, so both sources stay represented.
    var count = int.Parse(n, CultureInfo.InvariantCulture);
    var step = Math.Max(1, sessions.Count / Math.Max(1, count));
    sessions = [.. sessions.Where((_, i) => i % step == 0).Take(count)];
}
var settings = new ReplaySettings(
    Concurrency: int.Parse(options.GetValueOrDefault("concurrency", "32"), CultureInfo.InvariantCulture),
    TurnInterval: TimeSpan.FromSeconds(double.Parse(options.GetValueOrDefault("turn-seconds", "30"), CultureInfo.InvariantCulture)));
var keys = int.Parse(options.GetValueOrDefault("keys", "4"), CultureInfo.InvariantCulture);

Scenario[] scenarios =
[
    new("1 key", 1, Strategy.SingleKey, Cooldown: false),
    new($"{keys} keys round-robin", keys, Strategy.RoundRobin, Cooldown: false),
    new($"{keys} keys cache-aware", keys, Strategy.CacheAware, Cooldown: false),
    new($"{keys} keys cache-aware, key {keys - 1} cooling down midway", keys, Strategy.CacheAware, Cooldown: true),
];

Console.WriteLine($"Replaying {sessions.Count} sessions ({sessions.Sum(s => s.RequestPoints().Count)} requests), " +
    $"{settings.Concurrency} at a time, one turn per conversation every {settings.TurnInterval.TotalSeconds:0} s (virtual clock).");
var results = new List<ScenarioResult>();
foreach (var scenario in scenarios)
{
    var result = await BalanceRunner.RunAsync(scenario, sessions, settings);
    Console.WriteLine(Report.Line(result, results.FirstOrDefault()));
    results.Add(result);
}

var markdown = options.GetValueOrDefault("markdown", "bench/results/balance-replay.md");
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(markdown))!);
await File.WriteAllTextAsync(markdown, Report.Markdown(results, sessions.Count, settings, Path.GetFileName(workload)));
Console.WriteLine($"Written: {markdown}");
return 0;
