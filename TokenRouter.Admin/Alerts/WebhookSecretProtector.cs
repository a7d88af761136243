using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace TokenRouter.Admin.Alerts;

/// <summary>
/// Webhook signing secrets at rest: encrypted with ASP.NET Core Data Protection, so a database dump does not let anyone
/// forge alerts. Replicas must share the Data Protection key ring (as they must for the console cookie).
/// </summary>
public sealed class WebhookSecretProtector(IDataProtectionProvider provider)
{
    private const string Prefix = "whsec_";
    private readonly IDataProtector _protector = provider.CreateProtector("TokenRouter.Admin.Webhooks.Secret.v1");

    public static string Generate() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))
        .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public string Protect(string secret) => _protector.Protect(secret);

    /// <summary>The secret, or null when the key ring that protected it is gone (the webhook needs a new one).</summary>
    public string? TryUnprotect(string ciphertext)
    {
        try
        {
            return _protector.Unprotect(ciphertext);
        }
        catch (CryptographicException)
        {
            return null;
        }
    }
}
