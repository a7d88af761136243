using System.Diagnostics;

namespace TokenRouter.Gateway.Telemetry;

/// <summary>
/// Spans of the gateway: one per pipeline stage and one for the upstream call, under ASP.NET Core's request span.
/// Attributes name the model, provider, prefix hash and token counts — never bodies or keys.
/// </summary>
public static class GatewayActivity
{
    public const string SourceName = "TokenRouter.Gateway";
    public static readonly ActivitySource Source = new(SourceName);

    public const string Model = "gen_ai.request.model";
    public const string Provider = "gen_ai.system";
    public const string PrefixHash = "tokenrouter.prefix_hash";
    public const string FullHash = "tokenrouter.full_hash";
    public const string Deduplicated = "tokenrouter.deduplicated";
    public const string Deployment = "tokenrouter.deployment";
    public const string Attempt = "tokenrouter.attempt";
    public const string Failure = "tokenrouter.failure";
    public const string Fallback = "tokenrouter.fallback";
    public const string InputTokens = "gen_ai.usage.input_tokens";
    public const string CachedInputTokens = "gen_ai.usage.cached_input_tokens";
    public const string OutputTokens = "gen_ai.usage.output_tokens";
}
