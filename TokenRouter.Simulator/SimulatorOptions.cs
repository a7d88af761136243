using Microsoft.Extensions.Options;

namespace TokenRouter.Simulator;

/// <summary>Settings of the built-in fake provider (configuration section <c>Simulator</c>).</summary>
public sealed class SimulatorOptions
{
    public const string SectionName = "Simulator";

    /// <summary>Maps the <c>/sim/*</c> endpoints when true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// The key every <c>/sim/*</c> endpoint requires (<c>Authorization: Bearer</c> or <c>x-api-key</c>). When not
    /// configured, a random <c>sk-sim-…</c> key is generated once at start-up; the host reads the effective key from
    /// <c>IOptions&lt;SimulatorOptions&gt;</c> (the gateway's <c>sim-*</c> providers send it upstream).
    /// </summary>
    public string? ApiKey { get; set; }

    /// <summary>Delay before every response; <c>x-sim-latency-ms</c> overrides it per request.</summary>
    public int LatencyMs { get; set; }

    /// <summary>Delay between streamed events.</summary>
    public int StreamChunkDelayMs { get; set; }

    /// <summary>Inactivity TTL of OpenAI/DeepSeek cache entries and of Anthropic 5 m breakpoints.</summary>
    public TimeSpan DefaultCacheTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Upper bound of cached prefix hashes kept in memory across all formats (~60 bytes each).</summary>
    public int MaxCachedPrefixes { get; set; } = 500_000;

    /// <summary>Anthropic's minimum cacheable prefix; real models use 1024–4096 tokens.</summary>
    public int AnthropicMinCacheableTokens { get; set; } = 1024;

    /// <summary>
    /// When true, OpenAI's <c>prompt_cache_key</c> partitions the cache. OpenAI documents the key only as a
    /// routing hint combined with the prefix hash, so hits are not partitioned by default.
    /// </summary>
    public bool PartitionOpenAICacheByPromptCacheKey { get; set; }
}

internal sealed class SimulatorOptionsValidator : IValidateOptions<SimulatorOptions>
{
    public ValidateOptionsResult Validate(string? name, SimulatorOptions options)
    {
        var failures = new List<string>();
        if (options.LatencyMs < 0)
            failures.Add($"Simulator:LatencyMs must be >= 0 (was {options.LatencyMs}).");
        if (options.StreamChunkDelayMs < 0)
            failures.Add($"Simulator:StreamChunkDelayMs must be >= 0 (was {options.StreamChunkDelayMs}).");
        if (options.DefaultCacheTtl <= TimeSpan.Zero)
            failures.Add($"Simulator:DefaultCacheTtl must be positive (was {options.DefaultCacheTtl}).");
        if (options.MaxCachedPrefixes < 1_000)
            failures.Add($"Simulator:MaxCachedPrefixes must be >= 1000 (was {options.MaxCachedPrefixes}).");
        if (options.AnthropicMinCacheableTokens < 1)
            failures.Add($"Simulator:AnthropicMinCacheableTokens must be >= 1 (was {options.AnthropicMinCacheableTokens}).");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
