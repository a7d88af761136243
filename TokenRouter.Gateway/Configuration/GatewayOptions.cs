using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Configuration;

public enum DedupScope
{
    /// <summary>Only requests made with the same API key coalesce.</summary>
    Key,
    /// <summary>Identical requests coalesce across keys (one tenant's gateway).</summary>
    Global,
}

/// <summary>Gateway behaviour. Section <c>Gateway</c>; the seed's variable names are aliases (see <see cref="SeedConfigurationAliases"/>).</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Comma-separated client keys accepted in every mode (<c>TOKENROUTER_API_KEYS</c>).</summary>
    public string? ApiKeys { get; set; }
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;
    /// <summary>Total size of a request's headers (names and values) above which it is refused with 431 in the client's shape.</summary>
    public int MaxRequestHeadersBytes { get; set; } = 32 * 1024;
    public TimeSpan AuthCacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// On SIGTERM, how long requests in flight (streams included) may still finish before they are cut; the usage of
    /// every request is flushed to Redis after that (<c>SHUTDOWN_TIMEOUT</c>).
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public bool ToolSortEnabled { get; set; } = true;
    public bool CanonicalizeEnabled { get; set; } = true;
    public bool CacheInjectEnabled { get; set; } = true;
    /// <summary>Anthropic breakpoint TTL policy: <c>5m</c>, <c>1h</c>, or <c>mixed</c> (1 h on tools and system, 5 m on turns).</summary>
    public string AnthropicCacheTtl { get; set; } = "5m";
    /// <summary>How long a conversation's tool order is remembered: as long as the providers' caches live.</summary>
    public TimeSpan ToolOrderMemoryTtl { get; set; } = TimeSpan.FromHours(1);

    public bool DedupEnabled { get; set; } = true;
    public TimeSpan DedupTtl { get; set; } = TimeSpan.FromMinutes(2);
    public DedupScope DedupScope { get; set; } = DedupScope.Key;

    /// <summary>Anthropic requires <c>max_tokens</c>; used when an OpenAI client sends none.</summary>
    public int AnthropicDefaultMaxTokens { get; set; } = 4096;

    /// <summary>Longest wait for a provider's response headers before answering 504.</summary>
    public TimeSpan ProviderResponseTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest silence from a provider once its headers arrived (between body reads, between stream chunks)
    /// before the call is given up: 504 before the client's first byte, a stream error event after it.</summary>
    public TimeSpan UpstreamIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);
}

public sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions o)
    {
        var errors = new List<string>();
        if (o.MaxRequestBodyBytes < 1024) errors.Add("Gateway:MaxRequestBodyBytes must be at least 1024.");
        if (o.MaxRequestHeadersBytes is < 1024 or > TokenRouter.Gateway.Apis.RequestHeaderLimitMiddleware.MaxConfigurable)
            errors.Add($"Gateway:MaxRequestHeadersBytes (MAX_REQUEST_HEADER_BYTES) must be between 1024 and {TokenRouter.Gateway.Apis.RequestHeaderLimitMiddleware.MaxConfigurable}.");
        if (o.AuthCacheTtl < TimeSpan.Zero) errors.Add("Gateway:AuthCacheTtl (AUTH_CACHE_TTL) must not be negative.");
        if (o.ShutdownTimeout < TimeSpan.FromSeconds(1) || o.ShutdownTimeout > TimeSpan.FromHours(1))
            errors.Add("Gateway:ShutdownTimeout (SHUTDOWN_TIMEOUT) must be between 1s and 1h, e.g. 30s.");
        if (o.DedupTtl <= TimeSpan.Zero) errors.Add("Gateway:DedupTtl (DEDUP_TTL) must be positive, e.g. 2m.");
        if (o.ProviderResponseTimeout <= TimeSpan.Zero) errors.Add("Gateway:ProviderResponseTimeout must be positive.");
        if (o.UpstreamIdleTimeout <= TimeSpan.Zero) errors.Add("Gateway:UpstreamIdleTimeout (UPSTREAM_IDLE_TIMEOUT) must be positive, e.g. 2m.");
        if (o.AnthropicCacheTtl is not ("5m" or "1h" or "mixed")) errors.Add("Gateway:AnthropicCacheTtl must be 5m, 1h or mixed.");
        if (o.AnthropicDefaultMaxTokens < 1) errors.Add("Gateway:AnthropicDefaultMaxTokens must be positive.");
        if (o.ToolOrderMemoryTtl <= TimeSpan.Zero) errors.Add("Gateway:ToolOrderMemoryTtl must be positive.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
