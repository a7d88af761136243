using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using TokenRouter.Admin.Auth;

namespace TokenRouter.Admin.Console;

/// <summary>
/// The console's own sign-in: a cookie issued after the operator types the admin key on the login page. It is a
/// separate scheme that only the console's endpoints accept; the <c>/admin</c> REST API keeps its Bearer admin key
/// and never looks at the cookie.
/// </summary>
public static class ConsoleAuth
{
    public const string Scheme = "AdminConsole";
    public const string PolicyName = "AdminConsole";
    public const string CookieName = "tokenrouter-console";
    public const string AntiforgeryCookieName = "tokenrouter-console-af";
    public const string BasePath = "/console";
    public const string LoginPath = "/console/login";
    public const string LogoutPath = "/console/logout";
    public const string HomePath = "/console/spend";

    /// <summary>The claim holding <see cref="AdminKeyVerifier.Fingerprint"/> at sign-in.</summary>
    internal const string KeyFingerprintClaim = "tokenrouter:admin-key";

    internal static readonly TimeSpan SessionLifetime = TimeSpan.FromHours(8);

    internal static ClaimsPrincipal Principal(AdminKeyVerifier verifier) => new(new ClaimsIdentity(
    [
        new Claim(ClaimTypes.NameIdentifier, "admin"),
        new Claim(ClaimTypes.Name, "admin"),
        new Claim(ClaimTypes.Role, "admin"),
        new Claim(KeyFingerprintClaim, verifier.Fingerprint),
    ], Scheme));

    /// <summary>Signs the operator in; the caller has checked the key.</summary>
    internal static Task SignInAsync(HttpContext context, AdminKeyVerifier verifier) =>
        context.SignInAsync(Scheme, Principal(verifier), new AuthenticationProperties { IsPersistent = false });

    /// <summary>A cookie issued for another admin key (the key was changed since) is no longer accepted.</summary>
    internal static async Task ValidatePrincipalAsync(CookieValidatePrincipalContext context)
    {
        var verifier = context.HttpContext.RequestServices.GetRequiredService<AdminKeyVerifier>();
        if (context.Principal?.FindFirst(KeyFingerprintClaim)?.Value != verifier.Fingerprint)
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(Scheme);
        }
    }

    /// <summary>
    /// Where to go after signing in: only a console path of this site (no scheme, no host, no <c>//</c> or <c>/\</c>
    /// tricks), else the home page.
    /// </summary>
    public static string SafeReturnPath(string? returnUrl)
    {
        if (string.IsNullOrEmpty(returnUrl) || returnUrl.Length > 2048 || returnUrl.Contains('\\') ||
            returnUrl.StartsWith("//", StringComparison.Ordinal) ||
            returnUrl.Any(char.IsControl) ||
            !(returnUrl == BasePath || returnUrl.StartsWith(BasePath + "/", StringComparison.Ordinal) ||
              returnUrl.StartsWith(BasePath + "?", StringComparison.Ordinal)) ||
            returnUrl.StartsWith(LoginPath, StringComparison.Ordinal) ||
            returnUrl.StartsWith(LogoutPath, StringComparison.Ordinal))
        {
            return HomePath;
        }
        return returnUrl;
    }
}
