using TokenRouter.Admin.Data;
using TokenRouter.Admin.Providers;

namespace TokenRouter.Admin.Apis;

/// <summary>A new deployment of a provider: its key (required), and optionally its base URL, name, weight, limits and cache group.</summary>
public sealed record CreateProviderDeploymentRequest(string? ApiKey, string? BaseUrl, string? Name, double? Weight, int? RpmLimit,
    int? TpmLimit, string? CacheGroup, int? MaxConcurrency = null);

/// <summary>PATCH body: only the fields sent change; an explicit null removes a limit, the base URL or the cache group.</summary>
public sealed record UpdateProviderDeploymentRequest(bool? Enabled, double? Weight, int? RpmLimit, int? TpmLimit, string? BaseUrl, string? CacheGroup,
    int? MaxConcurrency = null);

/// <summary>A new key for a deployment: the next request through any gateway uses it.</summary>
public sealed record RotateProviderKeyRequest(string? ApiKey);

/// <summary>A deployment as Admin shows it: the key only as <see cref="KeyHint"/>, never in full.</summary>
/// <param name="DeploymentId">The id gateways use in metrics, health and <c>/console/providers</c>.</param>
public sealed record ProviderDeploymentResponse(Guid Id, string Provider, string Name, string DeploymentId, string? BaseUrl, string KeyHint,
    double Weight, int? RpmLimit, int? TpmLimit, string? CacheGroup, bool Enabled, long Version, DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt, DateTimeOffset? KeyRotatedAt, int? MaxConcurrency)
{
    public static ProviderDeploymentResponse From(ProviderDeploymentRecord d) =>
        new(d.Id, d.Provider, d.Name, ProviderDeploymentPublisher.GatewayId(d), d.BaseUrl, d.KeyHint, d.Weight, d.RequestsPerMinute,
            d.TokensPerMinute, d.CacheGroup, d.Enabled, d.Version, d.CreatedAt, d.UpdatedAt, d.KeyRotatedAt, d.MaxConcurrency);
}
