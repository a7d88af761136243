using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc;
using TokenRouter.Admin.Console;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The web console: Razor components rendered on the server (static SSR, enhanced forms), served by Admin with every
/// asset it needs, behind a cookie sign-in of its own (<see cref="ConsoleAuth"/>).
/// </summary>
public static class ConsoleExtensions
{
    public static IServiceCollection AddAdminConsole(this IServiceCollection services)
    {
        services.AddRazorComponents();
        services.AddSingleton<DeploymentsView>();

        services.AddAuthentication()
            .AddCookie(ConsoleAuth.Scheme, options =>
            {
                options.Cookie.Name = ConsoleAuth.CookieName;
                options.Cookie.Path = ConsoleAuth.BasePath; // never sent to /admin: the REST API stays Bearer-only
                options.Cookie.HttpOnly = true;
                options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest; // Secure whenever served over HTTPS
                // Lax, not Strict: a link to the console from another site (a chat message, the Aspire dashboard on
                // another host) keeps the session. Every state change is a POST, which Lax does not send cross-site,
                // and carries an anti-forgery token.
                options.Cookie.SameSite = SameSiteMode.Lax;
                options.LoginPath = ConsoleAuth.LoginPath;
                options.LogoutPath = ConsoleAuth.LogoutPath;
                options.AccessDeniedPath = ConsoleAuth.LoginPath;
                options.ExpireTimeSpan = ConsoleAuth.SessionLifetime;
                options.SlidingExpiration = true;
                options.Events.OnValidatePrincipal = ConsoleAuth.ValidatePrincipalAsync;
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(ConsoleAuth.PolicyName, policy => policy
                .AddAuthenticationSchemes(ConsoleAuth.Scheme)
                .RequireAuthenticatedUser());

        services.AddAntiforgery(options =>
        {
            options.Cookie.Name = ConsoleAuth.AntiforgeryCookieName;
            options.Cookie.Path = ConsoleAuth.BasePath;
            options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        });
        return services;
    }

    /// <summary>Maps the console under <c>/console</c> (and <c>/</c> to it). Call after <c>MapAdminApi</c>.</summary>
    public static WebApplication MapAdminConsole(this WebApplication app)
    {
        app.Use(ConsoleHeadersAsync);
        app.UseAntiforgery();
        app.MapStaticAssets();

        app.MapGet("/", () => TypedResults.Redirect(ConsoleAuth.HomePath)).ExcludeFromDescription();
        app.MapGet(ConsoleAuth.BasePath, () => TypedResults.Redirect(ConsoleAuth.HomePath)).ExcludeFromDescription()
            .RequireAuthorization(ConsoleAuth.PolicyName);

        // A form post ([FromForm]), so the anti-forgery middleware checks its token.
        app.MapPost(ConsoleAuth.LogoutPath, async (HttpContext context, [FromForm(Name = "signout")] string? _) =>
            {
                await context.SignOutAsync(ConsoleAuth.Scheme);
                return TypedResults.Redirect(ConsoleAuth.LoginPath + "?signedout=1");
            })
            .RequireAuthorization(ConsoleAuth.PolicyName)
            .ExcludeFromDescription();

        // Every page needs a signed-in operator but the login page, which says [AllowAnonymous].
        app.MapRazorComponents<ConsoleApp>()
            .RequireAuthorization(ConsoleAuth.PolicyName);
        return app;
    }

    /// <summary>
    /// Console responses are not cached (a new key's secret is on one of them) and run only the console's own assets:
    /// scripts and styles from this origin, no frames, forms posting back here only.
    /// </summary>
    private static Task ConsoleHeadersAsync(HttpContext context, Func<Task> next)
    {
        if (context.Request.Path.StartsWithSegments(ConsoleAuth.BasePath, out var rest) &&
            !Path.HasExtension(rest.Value))
        {
            var headers = context.Response.Headers;
            headers.CacheControl = "no-store";
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "same-origin";
            headers.ContentSecurityPolicy =
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'";
        }
        return next();
    }
}
