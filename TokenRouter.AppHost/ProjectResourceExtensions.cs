namespace TokenRouter.AppHost;

public static class ProjectResourceExtensions
{
    public const string AdminApiKeyParameter = "admin-api-key";
    public const string GatewayApiKeyParameter = "gateway-api-key";

    /// <summary>Where Admin serves its web console (linked from the dashboard).</summary>
    public const string AdminConsolePath = "/console";

    /// <summary>
    /// Adds an http endpoint unless the project's launch profile already brought one, so the AppHost works whether
    /// or not the project ships a launchSettings.json.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithDefaultHttpEndpoint(this IResourceBuilder<ProjectResource> project) =>
        project.Resource.Annotations.OfType<EndpointAnnotation>().Any(e => e.UriScheme == "http")
            ? project
            : project.WithHttpEndpoint();

    /// <summary>
    /// The admin key: <c>Parameters:admin-api-key</c> or the AppHost's own ADMIN_API_KEY when set, otherwise generated
    /// on first run and persisted to the AppHost's user secrets so it stays stable (see it in the dashboard's
    /// parameters or with <c>dotnet user-secrets list --project TokenRouter.AppHost</c>).
    /// </summary>
    public static IResourceBuilder<ParameterResource> AddAdminApiKey(this IDistributedApplicationBuilder builder)
    {
        var parameterKey = $"Parameters:{AdminApiKeyParameter}";
        if (string.IsNullOrEmpty(builder.Configuration[parameterKey]) && builder.Configuration["ADMIN_API_KEY"] is { Length: > 0 } fromEnvironment)
        {
            builder.Configuration[parameterKey] = fromEnvironment;
        }

        // No special characters: the key is pasted into curl headers and shell variables.
        var generated = new GenerateParameterDefault { MinLength = 32, Special = false };
        return builder.AddParameter(AdminApiKeyParameter, generated, secret: true, persist: true);
    }

    /// <summary>
    /// A client key for the gateway when the user configured none: <c>Parameters:gateway-api-key</c> when set, otherwise
    /// generated on first run and persisted to the AppHost's user secrets (stable across runs; shown in the dashboard's
    /// parameters and by <c>dotnet user-secrets list --project TokenRouter.AppHost</c>).
    /// </summary>
    public static IResourceBuilder<ParameterResource> AddGatewayApiKey(this IDistributedApplicationBuilder builder)
    {
        // No special characters: the key is pasted into curl headers, SDK settings and shell variables.
        var generated = new GenerateParameterDefault { MinLength = 40, Special = false };
        return builder.AddParameter(GatewayApiKeyParameter, generated, secret: true, persist: true);
    }
}
