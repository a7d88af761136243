namespace TokenRouter.Gateway.Accounting;

/// <summary>
/// The worst-case cost a request reserves against its key's quota before it is forwarded. The prompt is estimated from
/// the outbound body at <see cref="BytesPerToken"/> bytes a token (no tokenizer on the hot path) and priced at the
/// dearest input rate the model has: an Anthropic prompt may be billed entirely as a cache write (1.25x / 2x input).
/// The completion is priced at <c>max_tokens</c> (or the configured default) output tokens. Amounts in the quota
/// store are integer nano-USD, rounded up for reservations so rounding can only over-reserve.
/// </summary>
public static class QuotaEstimator
{
    public const int BytesPerToken = 4;
    private const decimal PerMillion = 1_000_000m;
    private const decimal NanosPerUsd = 1_000_000_000m;

    public static int EstimatePromptTokens(int promptBytes) =>
        promptBytes <= 0 ? 0 : (int)(((long)promptBytes + BytesPerToken - 1) / BytesPerToken);

    /// <summary>Prompt estimate × dearest input price + max tokens × output price, in USD.</summary>
    public static decimal WorstCaseCostUsd(ModelPrice price, int promptBytes, int? maxTokens, int defaultMaxTokens)
    {
        var completion = maxTokens is > 0 ? maxTokens.Value : defaultMaxTokens;
        var input = Math.Max(price.Input, Math.Max(price.CacheWrite5m, price.CacheWrite1h));
        return (EstimatePromptTokens(promptBytes) * input + completion * price.Output) / PerMillion;
    }

    /// <summary>USD → nano-USD, rounded up (reservations).</summary>
    public static long ToNanosCeiling(decimal usd) => usd <= 0 ? 0 : Clamp(decimal.Ceiling(usd * NanosPerUsd));

    /// <summary>USD → nano-USD, rounded to nearest (settled costs; quota limits round down via <see cref="ToNanosFloor"/>).</summary>
    public static long ToNanos(decimal usd) => usd <= 0 ? 0 : Clamp(decimal.Round(usd * NanosPerUsd, MidpointRounding.AwayFromZero));

    public static long ToNanosFloor(decimal usd) => usd <= 0 ? 0 : Clamp(decimal.Floor(usd * NanosPerUsd));

    public static decimal FromNanos(long nanos) => nanos / NanosPerUsd;

    // Lua compares doubles: beyond 2^53 nano-USD (~9 million USD) exactness would be lost, so cap there.
    private const long MaxExact = 1L << 53;

    private static long Clamp(decimal nanos) => nanos >= MaxExact ? MaxExact : (long)nanos;
}
