namespace TokenRouter.Gateway.Forwarding;

/// <summary>The headers the gateway adds to its answers (and the one request header it reads for routing).</summary>
public static class GatewayHeaders
{
    public const string Cost = "x-tokenrouter-cost-usd";
    public const string CacheSavings = "x-tokenrouter-cache-savings-usd";
    public const string CachedTokens = "x-tokenrouter-cached-tokens";
    public const string Unpriced = "x-tokenrouter-unpriced";
    public const string Deduplicated = "x-tokenrouter-deduplicated";
    public const string DedupSavings = "x-tokenrouter-dedup-savings-usd";
    public const string PrefixHash = "x-tokenrouter-prefix-hash";
    public const string FullHash = "x-tokenrouter-full-hash";
    /// <summary>On answers: the provider that served. On passthrough requests: the provider to use.</summary>
    public const string Provider = "x-tokenrouter-provider";
    public const string RequestId = "x-request-id";
    /// <summary>The model that answered instead of the one asked for (<c>TOKENROUTER_FALLBACKS</c>).</summary>
    public const string Fallback = "x-tokenrouter-fallback";
}
