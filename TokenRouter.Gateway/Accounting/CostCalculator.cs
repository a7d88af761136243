namespace TokenRouter.Gateway.Accounting;

/// <summary>What a request cost and what caching saved, in USD.</summary>
public readonly record struct Cost(decimal CostUsd, decimal CacheSavingsUsd, bool Priced)
{
    public static readonly Cost Unpriced = new(0, 0, false);
}

public static class CostCalculator
{
    private const decimal PerMillion = 1_000_000m;

    /// <summary>
    /// cost = uncached input × input + cached reads × cached input + cache writes × write price + completion × output;
    /// cache savings = the same tokens all at the full input price − cost (negative on a request that only wrote
    /// to Anthropic's cache: the write premium is a real cost).
    /// </summary>
    public static Cost Compute(in Usage usage, ModelPrice price)
    {
        var cost = (usage.UncachedInputTokens * price.Input
                    + usage.CachedReadTokens * price.CachedInput
                    + usage.CacheWrite5mTokens * price.CacheWrite5m
                    + usage.CacheWrite1hTokens * price.CacheWrite1h
                    + usage.CompletionTokens * price.Output) / PerMillion;
        var full = (usage.PromptTokens * price.Input + usage.CompletionTokens * price.Output) / PerMillion;
        return new Cost(cost, full - cost, true);
    }
}
