namespace TokenRouter.AppHost;

/// <summary>
/// Provider settings the gateway reads, forwarded from the AppHost's own environment/configuration only when set,
/// so an unset variable keeps the gateway's default (e.g. the built-in simulator) instead of an empty override.
/// </summary>
public static class GatewayEnvironment
{
    public static readonly string[] Settings =
    [
        "OPENAI_BASE_URL", "DEEPSEEK_BASE_URL", "ANTHROPIC_BASE_URL",
        "CACHE_INJECT_ENABLED", "DEDUP_ENABLED", "TOOL_SORT_ENABLED",
    ];

    /// <summary>Forwarded through secret parameters: masked in the dashboard and never written into a manifest.</summary>
    public static readonly string[] Secrets =
    [
        "OPENAI_API_KEY", "DEEPSEEK_API_KEY", "ANTHROPIC_API_KEY", "TOKENROUTER_API_KEYS",
    ];

    /// <summary>OPENAI_API_KEY becomes the parameter <c>openai-api-key</c>.</summary>
    public static string ParameterName(string variable) => variable.ToLowerInvariant().Replace('_', '-');

    public static IResourceBuilder<T> WithGatewayEnvironment<T>(this IResourceBuilder<T> gateway, IDistributedApplicationBuilder builder)
        where T : IResourceWithEnvironment
    {
        foreach (var name in Settings)
        {
            if (builder.Configuration[name] is { Length: > 0 } value)
            {
                gateway.WithEnvironment(name, value);
            }
        }

        foreach (var name in Secrets)
        {
            if (!string.IsNullOrEmpty(builder.Configuration[name]))
            {
                gateway.WithEnvironment(name, builder.AddParameterFromConfiguration(ParameterName(name), name, secret: true));
            }
        }

        return gateway;
    }
}
