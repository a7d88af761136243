namespace TokenRouter.Gateway.Routing;

/// <summary>
/// Settings of <see cref="CacheAwareBalancer"/> (configuration section <see cref="SectionName"/>). A pin lives as long as
/// the provider keeps the prefix it points at: longer would only keep a conversation on a deployment whose cache is cold
/// anyway, shorter would move a conversation away from a warm cache.
/// </summary>
public sealed class CacheAwareBalancingOptions
{
    public const string SectionName = "Routing:CacheAwareBalancing";

    /// <summary>A prefix shorter than this is never cached by the providers (OpenAI and Anthropic: 1024), so it proves no
    /// warm cache and is not pinned. Tokens are estimated as UTF-8 bytes / 4.</summary>
    public int MinCacheableTokens { get; set; } = 1024;

    /// <summary>Pins kept on this replica (~150 bytes each); past it, those closest to expiry are dropped.</summary>
    public int MaxPins { get; set; } = 200_000;

    /// <summary>OpenAI and DeepSeek (and any provider not listed in <see cref="CacheTtls"/>): OpenAI keeps a prefix 5–10
    /// minutes after its last use; DeepSeek's disk cache longer, but it rebuilds on any deployment quickly.</summary>
    public TimeSpan DefaultCacheTtl { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Anthropic's default breakpoint TTL (5 minutes, refreshed on every hit).</summary>
    public TimeSpan AnthropicCacheTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Anthropic with a <c>"ttl": "1h"</c> breakpoint in the request.</summary>
    public TimeSpan AnthropicLongCacheTtl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Per provider name, overrides the TTLs above.</summary>
    public Dictionary<string, TimeSpan> CacheTtls { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>At most this many prefix hashes (longest first) go into the one Redis read made on a local miss.</summary>
    public int MaxSharedLookups { get; set; } = 32;

    /// <summary>A Redis read slower than this is abandoned: the request goes to its rendezvous choice instead (a possible
    /// cache miss, never a wait).</summary>
    public TimeSpan SharedLookupTimeout { get; set; } = TimeSpan.FromMilliseconds(50);

    internal int MinCacheableBytes => MinCacheableTokens * 4;

    internal TimeSpan CacheTtlFor(string provider, bool oneHourBreakpoint) =>
        CacheTtls.TryGetValue(provider, out var ttl) ? ttl
        : provider.Contains("anthropic", StringComparison.OrdinalIgnoreCase) ? oneHourBreakpoint ? AnthropicLongCacheTtl : AnthropicCacheTtl
        : DefaultCacheTtl;

    internal IEnumerable<string> Validate()
    {
        if (MinCacheableTokens < 0) yield return $"{SectionName}:MinCacheableTokens must not be negative.";
        if (MaxPins < 16) yield return $"{SectionName}:MaxPins must be at least 16.";
        if (DefaultCacheTtl <= TimeSpan.Zero || AnthropicCacheTtl <= TimeSpan.Zero || AnthropicLongCacheTtl <= TimeSpan.Zero ||
            CacheTtls.Values.Any(t => t <= TimeSpan.Zero))
        {
            yield return $"{SectionName}: cache TTLs must be positive.";
        }
        if (MaxSharedLookups < 1) yield return $"{SectionName}:MaxSharedLookups must be at least 1.";
        if (SharedLookupTimeout <= TimeSpan.Zero) yield return $"{SectionName}:SharedLookupTimeout must be positive.";
    }
}
