using System.Text.Json.Serialization;

namespace TokenRouter.Replay;

/// <summary>Token totals as the upstream reported them in each response's usage.</summary>
internal sealed class UsageTotals
{
    public long Requests { get; set; }
    public long Errors { get; set; }
    public long Deduplicated { get; set; }
    public long PromptTokens { get; set; }
    public long CachedTokens { get; set; }
    public long CacheWrite5mTokens { get; set; }
    public long CacheWrite1hTokens { get; set; }

    [JsonIgnore] public long UncachedTokens => PromptTokens - CachedTokens - CacheWrite5mTokens - CacheWrite1hTokens;

    /// <summary>Input cost in units of "one token at the full input price": uncached ×1, cached reads ×0.1,
    /// Anthropic writes ×1.25 (5 m) / ×2 (1 h); OpenAI and DeepSeek have no write premium.</summary>
    [JsonIgnore] public double EffectiveCost => UncachedTokens + 0.1 * CachedTokens + 1.25 * CacheWrite5mTokens + 2.0 * CacheWrite1hTokens;

    [JsonIgnore] public double CachedRatio => PromptTokens == 0 ? 0 : (double)CachedTokens / PromptTokens;
    [JsonIgnore] public double CostRatio => PromptTokens == 0 ? 0 : EffectiveCost / PromptTokens;

    public void Add(UsageTotals o)
    {
        Requests += o.Requests;
        Errors += o.Errors;
        Deduplicated += o.Deduplicated;
        PromptTokens += o.PromptTokens;
        CachedTokens += o.CachedTokens;
        CacheWrite5mTokens += o.CacheWrite5mTokens;
        CacheWrite1hTokens += o.CacheWrite1hTokens;
    }
}

/// <summary>The simulator's own counters for the run's format (<c>GET /sim/stats</c>), to cross-check the responses.</summary>
internal sealed class SimCounters
{
    public long Calls { get; set; }
    public long Errors { get; set; }
    public long PromptTokens { get; set; }
    public long CacheReadTokens { get; set; }
    public long CacheWrite5mTokens { get; set; }
    public long CacheWrite1hTokens { get; set; }
}

/// <summary>One replay of the selected sessions for one vendor in one mode (one line of the results file).</summary>
internal sealed class RunResult
{
    public required string Vendor { get; init; }
    public required string Mode { get; init; }
    public required string Label { get; init; }
    public required int Sessions { get; init; }
    public required int Concurrency { get; init; }
    public required double Seconds { get; init; }
    public required UsageTotals Total { get; init; }
    public required Dictionary<string, UsageTotals> ByClient { get; init; }
    public SimCounters? Simulator { get; init; }
    public List<string> SampleErrors { get; init; } = [];
    public DateTimeOffset Finished { get; init; } = DateTimeOffset.UtcNow;
}

[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RunResult))]
internal sealed partial class ResultsJson : JsonSerializerContext;
