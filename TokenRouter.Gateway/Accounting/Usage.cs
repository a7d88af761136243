namespace TokenRouter.Gateway.Accounting;

/// <summary>
/// Normalized token usage of one request, whatever the provider. <see cref="PromptTokens"/> is the whole input
/// (uncached + cached reads + cache writes), the way OpenAI counts it; Anthropic's <c>input_tokens</c> is the
/// uncached rest, <see cref="UncachedInputTokens"/>.
/// </summary>
public readonly record struct Usage(
    int PromptTokens,
    int CachedReadTokens,
    int CacheWrite5mTokens,
    int CacheWrite1hTokens,
    int CompletionTokens)
{
    public int CacheWriteTokens => CacheWrite5mTokens + CacheWrite1hTokens;
    public int UncachedInputTokens => Math.Max(0, PromptTokens - CachedReadTokens - CacheWriteTokens);
    public int TotalTokens => PromptTokens + CompletionTokens;
    public bool IsEmpty => PromptTokens == 0 && CompletionTokens == 0;

    /// <summary>Builds usage from Anthropic's fields (input_tokens excludes cache reads and writes).</summary>
    public static Usage FromAnthropic(int inputTokens, int cacheRead, int cacheWrite5m, int cacheWrite1h, int outputTokens) =>
        new(inputTokens + cacheRead + cacheWrite5m + cacheWrite1h, cacheRead, cacheWrite5m, cacheWrite1h, outputTokens);
}
