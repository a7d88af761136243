using System.Globalization;
using System.Text;

namespace TokenRouter.BalanceReplay;

internal static class Report
{
    public static string Line(ScenarioResult r, ScenarioResult? baseline) =>
        $"{r.Scenario.Name,-48} hit ratio {r.HitRatio:0.000}{(baseline is null ? "" : $" ({r.HitRatio / baseline.HitRatio:0.000}× 1 key)")}  " +
        $"shares {Shares(r)}";

    public static string Markdown(IReadOnlyList<ScenarioResult> results, int sessions, ReplaySettings settings, string workload)
    {
        var baseline = results[0];
        var md = new StringBuilder();
        md.AppendLine("# Cache-aware balancing replay");
        md.AppendLine();
        // Numbers format invariantly: the projects run with InvariantGlobalization.
        md.AppendLine(
            $"{sessions} recorded agent sessions of `{workload}` ({results[0].Requests} requests), {settings.Concurrency} conversations " +
            $"in progress at once, one turn per conversation every {settings.TurnInterval.TotalSeconds:0} s on a virtual clock; every " +
            "request through the gateway's pipeline to an OpenAI-format key; each key is a simulator with a prefix cache of its own " +
            "(one organisation each: 128-token units from 1024 tokens, 5-minute TTL). Hit ratio = cached input tokens / input tokens.");
        md.AppendLine();
        md.AppendLine("| scenario | hit ratio | vs 1 key | uncached input tokens vs 1 key | share of requests per key | smallest share |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Scenario.Name} | {r.HitRatio:0.000} | {r.HitRatio / baseline.HitRatio:0.000}× | {Uncached(r) / (double)Uncached(baseline):0.00}× | {Shares(r)} | {r.Keys.Min(k => k.Requests) / (double)r.Requests:0.0%} |");
        }
        if (results.FirstOrDefault(r => r.Scenario.Cooldown) is { } cooled)
        {
            md.AppendLine();
            md.AppendLine(
                $"Cooling down: the last key is unavailable for the middle third of the requests; meanwhile the others carried " +
                $"{string.Join(" / ", cooled.Keys.Select(k => k.RequestsDuringCooldown.ToString(CultureInfo.InvariantCulture)))} requests.");
        }
        return md.ToString();
    }

    private static long Uncached(ScenarioResult r) => r.InputTokens - r.CachedTokens;

    private static string Shares(ScenarioResult r) =>
        string.Join(" / ", r.Keys.Select(k => (k.Requests / (double)r.Requests).ToString("0.0%", CultureInfo.InvariantCulture)));
}
