using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Apis;

// Wire shapes of /admin/api-keys. Property names go out as snake_case (see AdminExtensions).

/// <summary>Body of <c>POST /admin/api-keys</c>. Absent or null limits mean "unlimited"; the name is required
/// (checked by the endpoint, so a missing one gets a field-level message rather than a deserialization error).</summary>
public sealed record CreateApiKeyRequest(
    string? Name,
    decimal? QuotaUsd = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    DateTimeOffset? ExpiresAt = null);

/// <summary>A key as listed: never the secret, only its recognisable prefix.</summary>
public sealed record ApiKeyResponse(
    Guid Id,
    string Name,
    string KeyPrefix,
    decimal? QuotaUsd,
    int? RpmLimit,
    int? TpmLimit,
    bool Enabled,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt)
{
    public static ApiKeyResponse From(ApiKey key) => new(
        key.Id, key.Name, key.KeyPrefix, key.QuotaUsd.Trimmed(), key.RequestsPerMinute, key.TokensPerMinute,
        key.Enabled, key.CreatedAt, key.ExpiresAt, key.RevokedAt);
}

/// <summary>The one response that carries the key itself; it cannot be retrieved again.</summary>
public sealed record CreatedApiKeyResponse(
    Guid Id,
    string Name,
    string Key,
    string KeyPrefix,
    decimal? QuotaUsd,
    int? RpmLimit,
    int? TpmLimit,
    bool Enabled,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt);

/// <summary>
/// Body of <c>PATCH /admin/api-keys/{id}</c>: only the fields present change. For <c>quota_usd</c>, <c>rpm_limit</c>,
/// <c>tpm_limit</c> and <c>expires_at</c> an explicit null removes the limit; <c>name</c> and <c>enabled</c> cannot be
/// null. A revoked key cannot be enabled again (409).
/// </summary>
public sealed record UpdateApiKeyRequest(
    string? Name = null,
    decimal? QuotaUsd = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    DateTimeOffset? ExpiresAt = null,
    bool? Enabled = null);
