using System.Text.Json;
using System.Text.Json.Serialization;

namespace TokenRouter.Contracts;

/// <summary>
/// Provider deployments managed through Admin (written by Admin, read by gateways): hash <see cref="Hash"/>, field = the
/// deployment's id, value = a <see cref="Entry"/> as JSON. Admin rewrites the whole hash (DEL + HSET in one transaction)
/// after every change and every <see cref="ResyncInterval"/>, then publishes on <see cref="ChangedChannel"/>; gateways
/// reload the whole hash on that message and every <see cref="ResyncInterval"/> (a lost message costs one interval).
/// The provider key is never in the hash in plaintext: <see cref="Entry.ProtectedKey"/> is an ASP.NET Core Data
/// Protection payload (purpose <see cref="KeyPurpose"/>, application <see cref="DataProtectionApplication"/>) whose key
/// ring lives in Redis at <see cref="DataProtectionKeysKey"/>, shared by Admin and gateways.
/// </summary>
public static class ProviderDeploymentContract
{
    public const string Hash = "tokenrouter:providers:deployments";
    public const string ChangedChannel = "tokenrouter:providers:deployments:changed";
    public const string DataProtectionKeysKey = "tokenrouter:dataprotection:keys";
    public const string DataProtectionApplication = "TokenRouter";
    public const string KeyPurpose = "TokenRouter.ProviderDeployments.ApiKey.v1";

    public static readonly TimeSpan ResyncInterval = TimeSpan.FromSeconds(30);

    /// <summary>Providers Admin may add deployments to (the simulator's are configuration only).</summary>
    public static readonly string[] Providers = ["openai", "deepseek", "anthropic"];

    /// <summary>One Admin-managed deployment (snake_case JSON). Ids are <c>admin-</c> plus a name so they never collide with configured ones.</summary>
    /// <param name="Id">Deployment id as gateways show it in metrics and health (the name, prefixed).</param>
    /// <param name="Provider">One of <see cref="Providers"/>.</param>
    /// <param name="BaseUrl">Null = the provider's configured (or default) base URL.</param>
    /// <param name="ProtectedKey">The provider key, Data-Protection-protected; null for a keyless deployment.</param>
    /// <param name="Version">Bumped on every change (a rotated key is a new version).</param>
    /// <param name="MaxConcurrency">Upstream requests in flight at once per gateway; null = no cap (and what older Admins wrote).</param>
    public sealed record Entry(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("provider")] string Provider,
        [property: JsonPropertyName("base_url")] string? BaseUrl,
        [property: JsonPropertyName("protected_key")] string? ProtectedKey,
        [property: JsonPropertyName("weight")] double Weight,
        [property: JsonPropertyName("cache_group")] string? CacheGroup,
        [property: JsonPropertyName("rpm")] int? Rpm,
        [property: JsonPropertyName("tpm")] int? Tpm,
        [property: JsonPropertyName("enabled")] bool Enabled,
        [property: JsonPropertyName("version")] long Version,
        [property: JsonPropertyName("max_concurrency")] int? MaxConcurrency = null)
    {
        public string ToJson() => JsonSerializer.Serialize(this);

        /// <summary>Null when the value is not such an entry.</summary>
        public static Entry? FromJson(string? json)
        {
            if (string.IsNullOrEmpty(json)) return null;
            try
            {
                var entry = JsonSerializer.Deserialize<Entry>(json);
                return entry is { Id.Length: > 0, Provider.Length: > 0 } && entry.Weight > 0 ? entry : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }
}
