using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace TokenRouter.Admin.Auth;

/// <summary>
/// Authenticates the operator by the admin key, sent as <c>Authorization: Bearer &lt;key&gt;</c> or <c>x-api-key: &lt;key&gt;</c>.
/// An authentication scheme rather than an endpoint filter, so the 401 comes before body binding (an anonymous
/// caller with a malformed body learns nothing but "unauthorized"). Keys are never logged.
/// </summary>
public sealed class AdminKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    AdminKeyVerifier verifier) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "AdminKey";
    public const string PolicyName = "Admin";
    public const string ApiKeyHeader = "x-api-key";

    private static readonly ClaimsPrincipal Operator =
        new(new ClaimsIdentity([new Claim(ClaimTypes.Name, "admin"), new Claim(ClaimTypes.Role, "admin")], SchemeName));

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = ReadPresentedKey(Request.Headers);
        if (presented is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        return Task.FromResult(verifier.Matches(presented)
            ? AuthenticateResult.Success(new AuthenticationTicket(Operator, SchemeName))
            : AuthenticateResult.Fail("The admin key is not valid."));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer realm=\"tokenrouter-admin\"";
        await TypedResults.Problem(
                statusCode: StatusCodes.Status401Unauthorized,
                title: "Unauthorized",
                detail: "A valid admin key is required: send 'Authorization: Bearer <ADMIN_API_KEY>' or 'x-api-key: <ADMIN_API_KEY>'.")
            .ExecuteAsync(Context);
    }

    internal static string? ReadPresentedKey(IHeaderDictionary headers)
    {
        var authorization = headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = authorization["Bearer ".Length..].Trim();
            if (token.Length > 0)
            {
                return token;
            }
        }

        var apiKey = headers[ApiKeyHeader].ToString().Trim();
        return apiKey.Length > 0 ? apiKey : null;
    }
}
