using System.Globalization;
using System.Text;
using System.Text.Json;

namespace TokenRouter.Replay;

/// <summary>Turns the results file (one <see cref="RunResult"/> a line) into the markdown tables.</summary>
internal static class Report
{
    private static readonly string[] ModeOrder = ["direct", "gateway", "gateway-no-toolsort", "gateway-no-canonicalize", "gateway-no-cacheinject", "best"];

    private static readonly Dictionary<string, string> ModeNames = new()
    {
        ["direct"] = "DIRECT (clients → simulator)",
        ["gateway"] = "GATEWAY, all switches on",
        ["gateway-no-toolsort"] = "GATEWAY, tool sort off",
        ["gateway-no-canonicalize"] = "GATEWAY, canonicalize off",
        ["gateway-no-cacheinject"] = "GATEWAY, cache inject off",
        ["best"] = "BEST achievable (canonical, direct)",
    };

    public static string Render(string resultsPath)
    {
        var runs = new Dictionary<(string Vendor, string Label), RunResult>();
        foreach (var line in File.ReadLines(resultsPath))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var r = JsonSerializer.Deserialize(line, ResultsJson.Default.RunResult)!;
            runs[(r.Vendor, r.Label)] = r; // the latest run of a vendor/mode wins
        }

        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var any = runs.Values.FirstOrDefault();
        sb.AppendLine("## Cache replay: effective input cost per vendor and mode");
        sb.AppendLine();
        if (any is not null)
        {
            var requests = runs.Values.Where(r => r.Label == "direct").Select(r => r.Total.Requests).DefaultIfEmpty(any.Total.Requests).Max();
            sb.AppendLine(ci, $"{any.Sessions} sessions of `agent-sessions.jsonl` ({requests} requests per vendor and mode), {any.Concurrency} sessions at a time, " +
                              $"clients A–D round-robin; simulator reset before every run. Last run {runs.Values.Max(r => r.Finished):u}.");
            sb.AppendLine();
        }
        sb.AppendLine("| Vendor | Mode | Requests | Errors | Prompt tokens | Cached ratio | Cache writes | Effective input cost ÷ full price | Cost ÷ BEST | Prompt tokens ÷ DIRECT | Upstream calls (sim) |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var vendor in Runner.AllVendors)
        {
            var mine = runs.Values.Where(r => r.Vendor == vendor).OrderBy(r => Order(r.Label)).ThenBy(r => r.Label, StringComparer.Ordinal).ToList();
            if (mine.Count == 0) continue;
            var direct = mine.FirstOrDefault(r => r.Label == "direct");
            var best = mine.FirstOrDefault(r => r.Label == "best");
            foreach (var r in mine)
            {
                var t = r.Total;
                var vsBest = best is null || best.Total.EffectiveCost == 0 ? "–" : (t.EffectiveCost / best.Total.EffectiveCost).ToString("F3", ci) + "×";
                var vsDirect = direct is null || direct.Total.PromptTokens == 0 ? "–" : ((double)t.PromptTokens / direct.Total.PromptTokens).ToString("F3", ci);
                var writes = t.CacheWrite5mTokens + t.CacheWrite1hTokens;
                var sim = r.Simulator is null ? "?" : r.Simulator.Calls.ToString(ci) + (SimAgrees(r) ? "" : " ≠");
                var errors = t.Errors.ToString(ci) + (t.Deduplicated > 0 ? $" (+{t.Deduplicated} dedup)" : "");
                sb.AppendLine(ci, $"| {vendor} | {Name(r.Label)} | {t.Requests} | {errors} | {t.PromptTokens:N0} | {t.CachedRatio:P1} | {(writes == 0 ? "0" : writes.ToString("N0", ci))} | {t.CostRatio:F3} | {vsBest} | {vsDirect} | {sim} |");
            }
        }

        sb.AppendLine();
        sb.AppendLine("### Cached ratio per client program");
        sb.AppendLine();
        sb.AppendLine("A = as recorded, B = tool order shuffled per conversation (half of them add a tool mid-way), C = schema keys re-ordered, D = tool-call arguments re-serialized with spaces once they are history (the newest assistant message goes back verbatim once, so its form changes between turns; Anthropic `input` objects are unaffected). In BEST every position sends the canonical form.");
        sb.AppendLine();
        sb.AppendLine("| Vendor | Mode | A | B | C | D |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|");
        foreach (var vendor in Runner.AllVendors)
        {
            foreach (var r in runs.Values.Where(r => r.Vendor == vendor).OrderBy(r => Order(r.Label)))
            {
                string Cell(string c) => r.ByClient.TryGetValue(c, out var u) ? u.CachedRatio.ToString("P1", ci) : "–";
                sb.AppendLine(ci, $"| {vendor} | {Name(r.Label)} | {Cell("A")} | {Cell("B")} | {Cell("C")} | {Cell("D")} |");
            }
        }

        var notes = runs.Values.Where(r => r.SampleErrors.Count > 0).ToList();
        if (notes.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("### Errors (first few per run)");
            sb.AppendLine();
            foreach (var r in notes)
                foreach (var e in r.SampleErrors) sb.AppendLine(ci, $"- {r.Vendor} / {r.Label}: `{e.ReplaceLineEndings(" ").Replace("`", "'", StringComparison.Ordinal)}`");
        }
        return sb.ToString();
    }

    /// <summary>The simulator's own counters agree with the usage summed from the responses.</summary>
    private static bool SimAgrees(RunResult r) =>
        r.Simulator is { } s && s.PromptTokens == r.Total.PromptTokens && s.CacheReadTokens == r.Total.CachedTokens
        && s.CacheWrite5mTokens == r.Total.CacheWrite5mTokens && s.CacheWrite1hTokens == r.Total.CacheWrite1hTokens;

    private static int Order(string label)
    {
        if (label == "best") return 100;
        var i = Array.IndexOf(ModeOrder, label);
        return i < 0 ? 50 : i; // other labels go just before BEST
    }

    private static string Name(string label) => ModeNames.TryGetValue(label, out var n) ? n : label;
}
