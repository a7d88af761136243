using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace TokenRouter.Gateway.Telemetry;

/// <summary>
/// Running totals for the counters every request adds to, kept per label set and read by observable instruments when
/// metrics are collected. A counter's <c>Add</c> with tags makes OpenTelemetry hash every tag key and value to find its
/// series, once per call; a request made ten such calls. Here it finds its series once (one dictionary lookup by
/// provider and model, or by deployment) and adds with <see cref="Interlocked"/>.
/// </summary>
internal sealed class ModelTally(string provider, string model)
{
    public static readonly string[] StatusClasses = ["2xx", "4xx", "499", "5xx"];
    public const int Prompt = 0, CachedRead = 1, CacheWrite = 2, Completion = 3; // indices into Tokens and TokenKinds
    public static readonly string[] TokenKinds = ["prompt", "cached_read", "cache_write", "completion"];

    public readonly string Provider = provider;
    public readonly string Model = model;
    public readonly long[] Requests = new long[StatusClasses.Length * 2]; // status class × stream (false, true)
    public readonly long[] Tokens = new long[TokenKinds.Length];
    public long Deduplicated;
    public long Unpriced;
    public double Cost;
    public double CacheSavings;
    public double DedupSavings;

    public static int StatusIndex(int status) => status switch
    {
        >= 200 and < 300 => 0,
        499 => 2,
        >= 400 and < 500 => 1,
        _ => 3,
    };

    public TagList Tags => new() { { "provider", Provider }, { "model", Model } };
}

internal sealed class DeploymentTally(string provider, string deployment)
{
    public static readonly string[] Outcomes = ["success", "client_error", "failure"]; // indexed by DeploymentOutcome

    public readonly string Provider = provider;
    public readonly string Deployment = deployment;
    public readonly long[] Attempts = new long[Outcomes.Length];
    public long InputTokens;
    public long CachedTokens;

    public TagList Tags => new() { { "provider", Provider }, { "deployment", Deployment } };
}

internal sealed class MetricTallies
{
    private readonly ConcurrentDictionary<(string Provider, string Model), ModelTally> _models = new();
    private readonly ConcurrentDictionary<(string Provider, string Deployment), DeploymentTally> _deployments = new();

    public ModelTally For(string provider, string model) =>
        _models.TryGetValue((provider, model), out var tally) ? tally : _models.GetOrAdd((provider, model), static k => new ModelTally(k.Provider, k.Model));

    public DeploymentTally ForDeployment(string provider, string deployment) =>
        _deployments.TryGetValue((provider, deployment), out var tally)
            ? tally
            : _deployments.GetOrAdd((provider, deployment), static k => new DeploymentTally(k.Provider, k.Deployment));

    public static void Add(ref double total, double value)
    {
        var seen = Volatile.Read(ref total);
        while (true)
        {
            var found = Interlocked.CompareExchange(ref total, seen + value, seen);
            if (found.Equals(seen)) return;
            seen = found;
        }
    }

    // Only series that were added to are reported, as a counter that was never added to has none.

    public IEnumerable<Measurement<long>> Requests()
    {
        foreach (var t in _models.Values)
            for (var i = 0; i < t.Requests.Length; i++)
                if (Volatile.Read(ref t.Requests[i]) is var n and > 0)
                    yield return new(n, new TagList
                    {
                        { "provider", t.Provider }, { "model", t.Model },
                        { "status", ModelTally.StatusClasses[i >> 1] }, { "stream", (i & 1) == 1 ? "true" : "false" },
                    });
    }

    public IEnumerable<Measurement<long>> Tokens() =>
        ByLabel(_models.Values, t => t.Tokens, t => t.Tags, "kind", ModelTally.TokenKinds);

    public IEnumerable<Measurement<long>> PerModel(Func<ModelTally, long> read)
    {
        foreach (var t in _models.Values)
            if (read(t) is var n and > 0) yield return new(n, t.Tags);
    }

    public IEnumerable<Measurement<double>> PerModel(Func<ModelTally, double> read)
    {
        foreach (var t in _models.Values)
            if (read(t) is var v and not 0) yield return new(v, t.Tags);
    }

    public IEnumerable<Measurement<long>> DeploymentAttempts() =>
        ByLabel(_deployments.Values, t => t.Attempts, t => t.Tags, "outcome", DeploymentTally.Outcomes);

    public IEnumerable<Measurement<long>> PerDeployment(Func<DeploymentTally, long> read)
    {
        foreach (var t in _deployments.Values)
            if (read(t) is var n and > 0) yield return new(n, t.Tags);
    }

    /// <summary>One series per tally and non-zero count, the count's index naming <paramref name="label"/>'s value.</summary>
    private static IEnumerable<Measurement<long>> ByLabel<T>(IEnumerable<T> tallies, Func<T, long[]> counts, Func<T, TagList> tagsOf,
        string label, string[] values)
    {
        foreach (var t in tallies)
        {
            var c = counts(t);
            for (var i = 0; i < c.Length; i++)
                if (Volatile.Read(ref c[i]) is var n and > 0)
                {
                    var tags = tagsOf(t);
                    tags.Add(label, values[i]);
                    yield return new(n, tags);
                }
        }
    }
}
