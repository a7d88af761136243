using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using TokenRouter.Admin.Configuration;

namespace TokenRouter.Admin.Auth;

/// <summary>Checks a presented admin key in constant time.</summary>
public sealed class AdminKeyVerifier(IOptions<AdminAuthOptions> options)
{
    // Comparing fixed-size digests keeps the time independent of both content and length of the guess.
    private readonly byte[] _expectedDigest = SHA256.HashData(Encoding.UTF8.GetBytes(options.Value.ApiKey ?? ""));

    public bool Matches(string presented) =>
        presented.Length > 0 &&
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), _expectedDigest);

    /// <summary>
    /// A one-way token of the configured key (not the key, nor its plain SHA-256). The web console stores it in its
    /// sign-in cookie and refuses cookies whose token differs, so changing <c>ADMIN_API_KEY</c> signs every console out.
    /// </summary>
    public string Fingerprint => _fingerprint ??= Convert.ToHexStringLower(
        HMACSHA256.HashData(Encoding.UTF8.GetBytes("tokenrouter-console-session"), _expectedDigest))[..32];

    private string? _fingerprint;
}
