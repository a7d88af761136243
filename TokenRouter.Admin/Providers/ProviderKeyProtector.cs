using Microsoft.AspNetCore.DataProtection;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Providers;

/// <summary>
/// Encrypts provider keys at rest with ASP.NET Core Data Protection (purpose <see cref="ProviderDeploymentContract.KeyPurpose"/>).
/// The key ring lives in Redis and is shared with the gateways, so the same payload is stored in Postgres and published
/// to Redis, and only a process holding the key ring can read it back.
/// </summary>
public sealed class ProviderKeyProtector(IDataProtectionProvider provider)
{
    private readonly IDataProtector _protector = provider.CreateProtector(ProviderDeploymentContract.KeyPurpose);

    public string Protect(string apiKey) => _protector.Protect(apiKey);

    /// <summary><c>sk-...abcd</c>: the first three and last four characters of a long key, less of a short one.</summary>
    public static string Hint(string apiKey) => apiKey.Length switch
    {
        >= 12 => $"{apiKey[..3]}...{apiKey[^4..]}",
        >= 6 => $"...{apiKey[^2..]}",
        _ => "...",
    };
}
