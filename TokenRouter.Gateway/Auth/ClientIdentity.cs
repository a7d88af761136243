namespace TokenRouter.Gateway.Auth;

/// <summary>Who is calling: an API key's identity and its limits. Never holds the key itself.</summary>
public sealed record ClientIdentity(
    string KeyId,
    string Name,
    string KeyHash,
    decimal? QuotaUsd = null,
    int? RequestsPerMinute = null,
    int? TokensPerMinute = null,
    DateTimeOffset? ExpiresAt = null)
{
    /// <summary>The dedup and cache scope of this key.</summary>
    public string Scope => KeyId;
}
