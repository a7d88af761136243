using TokenRouter.Admin.Data;
using TokenRouter.Admin.Quotas;

namespace TokenRouter.Admin.Apis;

// Wire shapes of /admin/api-keys. Property names go out as snake_case (see AdminExtensions).

/// <summary>Body of <c>POST /admin/api-keys</c>. Absent or null limits mean "unlimited"; the name is required
/// (checked by the endpoint, so a missing one gets a field-level message rather than a deserialization error).</summary>
/// <param name="BudgetDuration">The quota is per period of this (<c>30s</c>, <c>720h</c>, <c>1d</c>, <c>1w</c>, <c>1mo</c>); absent = lifetime.</param>
/// <param name="Models">Allowed models (exact names or <c>prefix*</c>); absent = every model.</param>
/// <param name="TeamId">The team the key belongs to; its budget and limits apply on top of the key's.</param>
public sealed record CreateApiKeyRequest(
    string? Name,
    decimal? QuotaUsd = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    DateTimeOffset? ExpiresAt = null,
    string? BudgetDuration = null,
    string[]? Models = null,
    Guid? TeamId = null);

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
    DateTimeOffset? RevokedAt,
    string? BudgetDuration = null,
    string[]? Models = null,
    Guid? TeamId = null,
    BudgetReport? Budget = null)
{
    /// <summary>The key without its budget report (<see cref="Budget"/> is filled in by <c>GET /admin/api-keys/{id}</c>).</summary>
    public static ApiKeyResponse From(ApiKey key) => new(
        key.Id, key.Name, key.KeyPrefix, key.QuotaUsd.Trimmed(), key.RequestsPerMinute, key.TokensPerMinute,
        key.Enabled, key.CreatedAt, key.ExpiresAt, key.RevokedAt, key.BudgetDuration, ModelList.Split(key.Models), key.TeamId);
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
    DateTimeOffset? ExpiresAt,
    string? BudgetDuration = null,
    string[]? Models = null,
    Guid? TeamId = null);

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
    bool? Enabled = null,
    string? BudgetDuration = null,
    string[]? Models = null,
    Guid? TeamId = null);

/// <summary>Allowed-model lists: a JSON array on the wire, comma-separated in the database and in Redis.</summary>
public static class ModelList
{
    public const int MaxEntries = 100;
    public const int MaxEntryLength = 200;

    public static string[]? Split(string? stored) =>
        string.IsNullOrEmpty(stored) ? null : stored.Split(',', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Null for null or an empty list (no restriction).</summary>
    public static string? Join(string[]? models) =>
        models is null || models.Length == 0 ? null : string.Join(',', models.Select(m => m.Trim()));

    /// <summary>An error message, or null when the list is valid.</summary>
    public static string? Validate(string[]? models)
    {
        if (models is null)
        {
            return null;
        }
        if (models.Length > MaxEntries)
        {
            return $"At most {MaxEntries} models.";
        }
        foreach (var model in models)
        {
            if (string.IsNullOrWhiteSpace(model) || model.Trim().Length > MaxEntryLength || model.Contains(',')
                || model.Trim().TrimEnd('*').Contains('*'))
            {
                return $"Each model must be a name or a 'prefix*' pattern of 1 to {MaxEntryLength} characters, with no comma.";
            }
        }
        return null;
    }
}
