using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using TokenRouter.Admin.Auth;

namespace TokenRouter.Admin.Apis;

/// <summary>Declares the admin key in the OpenAPI document, so the reference page can send it.</summary>
internal sealed class AdminKeySecurityTransformer : IOpenApiDocumentTransformer
{
    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[AdminKeyAuthenticationHandler.SchemeName] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "The ADMIN_API_KEY, as 'Authorization: Bearer <key>' (or 'x-api-key: <key>').",
        };
        document.Security ??= [];
        document.Security.Add(new OpenApiSecurityRequirement
        {
            [new OpenApiSecuritySchemeReference(AdminKeyAuthenticationHandler.SchemeName, document)] = [],
        });
        return Task.CompletedTask;
    }
}
