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
}
