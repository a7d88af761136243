using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Accounting;

/// <summary>List prices in USD per million tokens.</summary>
public sealed record ModelPrice(
    decimal Input,
    decimal CachedInput,
    decimal CacheWrite5m,
    decimal CacheWrite1h,
    decimal Output);

/// <summary>Section <c>Pricing</c>: <c>Pricing:Models:{model}:Input</c> … overrides or adds prices.</summary>
public sealed class PricingOptions
{
    public const string SectionName = "Pricing";
    public Dictionary<string, ModelPrice> Models { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>
/// The price table: shipped list prices, overridable per model. A dated model name (<c>gpt-4o-2024-08-06</c>,
/// <c>claude-sonnet-4-5-20250929</c>) takes the price of its longest listed prefix. A model with no price is
/// reported as unpriced, never billed $0.
/// </summary>
public sealed class PriceTable
{
    // Sources: the providers' public pricing pages. OpenAI and DeepSeek charge nothing for cache writes;
    // Anthropic charges 1.25x input for 5-minute writes, 2x for 1-hour writes, 0.1x for reads.
    public static readonly IReadOnlyDictionary<string, ModelPrice> ListPrices = new Dictionary<string, ModelPrice>(StringComparer.OrdinalIgnoreCase)
    {
        ["gpt-5"] = new(1.25m, 0.125m, 0, 0, 10.00m),
        ["gpt-5-mini"] = new(0.25m, 0.025m, 0, 0, 2.00m),
        ["gpt-5-nano"] = new(0.05m, 0.005m, 0, 0, 0.40m),
        ["gpt-4.1"] = new(2.00m, 0.50m, 0, 0, 8.00m),
        ["gpt-4.1-mini"] = new(0.40m, 0.10m, 0, 0, 1.60m),
        ["gpt-4.1-nano"] = new(0.10m, 0.025m, 0, 0, 0.40m),
        ["gpt-4o"] = new(2.50m, 1.25m, 0, 0, 10.00m),
        ["gpt-4o-mini"] = new(0.15m, 0.075m, 0, 0, 0.60m),
        // Embeddings (passthrough): input tokens only.
        ["text-embedding-3-small"] = new(0.02m, 0, 0, 0, 0),
        ["text-embedding-3-large"] = new(0.13m, 0, 0, 0, 0),
        ["text-embedding-ada-002"] = new(0.10m, 0, 0, 0, 0),
        ["o1"] = new(15.00m, 7.50m, 0, 0, 60.00m),
        ["o3"] = new(2.00m, 0.50m, 0, 0, 8.00m),
        ["o3-mini"] = new(1.10m, 0.55m, 0, 0, 4.40m),
        ["o4-mini"] = new(1.10m, 0.275m, 0, 0, 4.40m),
        ["claude-opus-4-5"] = new(5.00m, 0.50m, 6.25m, 10.00m, 25.00m),
        ["claude-opus-4-1"] = new(15.00m, 1.50m, 18.75m, 30.00m, 75.00m),
        ["claude-opus-4"] = new(15.00m, 1.50m, 18.75m, 30.00m, 75.00m),
        ["claude-sonnet-4-5"] = new(3.00m, 0.30m, 3.75m, 6.00m, 15.00m),
        ["claude-sonnet-4"] = new(3.00m, 0.30m, 3.75m, 6.00m, 15.00m),
        ["claude-3-7-sonnet"] = new(3.00m, 0.30m, 3.75m, 6.00m, 15.00m),
        ["claude-haiku-4-5"] = new(1.00m, 0.10m, 1.25m, 2.00m, 5.00m),
        ["claude-3-5-haiku"] = new(0.80m, 0.08m, 1.00m, 1.60m, 4.00m),
        ["deepseek-chat"] = new(0.28m, 0.028m, 0, 0, 0.42m),
        ["deepseek-reasoner"] = new(0.28m, 0.028m, 0, 0, 0.42m),
        // The simulator bills like the models it imitates, so its savings read like real ones.
        ["sim-openai"] = new(2.50m, 1.25m, 0, 0, 10.00m),
        ["sim-anthropic"] = new(3.00m, 0.30m, 3.75m, 6.00m, 15.00m),
        ["sim-deepseek"] = new(0.28m, 0.028m, 0, 0, 0.42m),
    };

    private readonly IReadOnlyDictionary<string, ModelPrice> _configured;
    private volatile Snapshot _snapshot;

    /// <summary>Prices and their keys longest first (for prefix matching), swapped whole when an override changes.</summary>
    private sealed record Snapshot(Dictionary<string, ModelPrice> Prices, string[] ByLengthDesc);

    public PriceTable(IOptions<PricingOptions> options)
    {
        _configured = new Dictionary<string, ModelPrice>(options.Value.Models, StringComparer.OrdinalIgnoreCase);
        _snapshot = Build(new Dictionary<string, ModelPrice>(StringComparer.OrdinalIgnoreCase));
    }

    public IReadOnlyDictionary<string, ModelPrice> Prices => _snapshot.Prices;

    /// <summary>Replaces the overrides published by Admin. Precedence: Admin overrides, then configuration, then list prices.</summary>
    public void SetOverrides(IReadOnlyDictionary<string, ModelPrice> overrides) =>
        _snapshot = Build(overrides);

    private Snapshot Build(IReadOnlyDictionary<string, ModelPrice> overrides)
    {
        var prices = new Dictionary<string, ModelPrice>(ListPrices, StringComparer.OrdinalIgnoreCase);
        foreach (var (model, price) in _configured) prices[model] = price;
        foreach (var (model, price) in overrides) prices[model] = price;
        return new Snapshot(prices, [.. prices.Keys.OrderByDescending(k => k.Length)]);
    }

    public bool TryGet(string model, out ModelPrice price) => TryGet(model, out price, out _);

    /// <summary>The price of <paramref name="model"/>: its own, or that of the longest listed model it is a dated or
    /// suffixed variant of (<c>gpt-4o-2024-08-06</c> → <c>gpt-4o</c>); <paramref name="listedAs"/> names the entry used.</summary>
    public bool TryGet(string model, out ModelPrice price, out string listedAs)
    {
        var snapshot = _snapshot;
        listedAs = model;
        if (snapshot.Prices.TryGetValue(model, out price!)) return true;
        foreach (var key in snapshot.ByLengthDesc)
        {
            if (model.Length > key.Length && model.StartsWith(key, StringComparison.OrdinalIgnoreCase) && model[key.Length] == '-'
                && snapshot.Prices.TryGetValue(key, out price!))
            {
                listedAs = key;
                return true;
            }
        }
        price = null!;
        return false;
    }
}
