using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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

    public const string ClientKeysVariable = "TOKENROUTER_API_KEYS";

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

        // A newcomer needs a client key: without TOKENROUTER_API_KEYS the gateway accepts the generated gateway-api-key.
        var userKeys = !string.IsNullOrEmpty(builder.Configuration[ClientKeysVariable]);
        if (!userKeys)
        {
            gateway.WithEnvironment(ClientKeysVariable, builder.AddGatewayApiKey());
        }

        builder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
        {
            var logger = e.Services.GetRequiredService<ILoggerFactory>().CreateLogger("TokenRouter.AppHost");
            if (userKeys)
            {
                logger.LogInformation(
                    "Gateway client keys: the ones in {Variable} (secret parameter '{Parameter}'). Send one as 'Authorization: Bearer <key>'.",
                    ClientKeysVariable, ParameterName(ClientKeysVariable));
            }
            else
            {
                // Never the key itself: logs end up in terminals, CI output and bug reports.
                logger.LogInformation(
                    "Gateway client key: the secret parameter '{Parameter}' (generated once, kept in this AppHost's user secrets). " +
                    "See it in the dashboard under Parameters ({Parameter}, show value) or with 'dotnet user-secrets list --project TokenRouter.AppHost' " +
                    "(Parameters:{Parameter}); send it as 'Authorization: Bearer <key>'. Set {Variable} to use keys of your own instead.",
                    ProjectResourceExtensions.GatewayApiKeyParameter, ProjectResourceExtensions.GatewayApiKeyParameter,
                    ProjectResourceExtensions.GatewayApiKeyParameter, ClientKeysVariable);
            }

            return Task.CompletedTask;
        });

        return gateway;
    }
}
