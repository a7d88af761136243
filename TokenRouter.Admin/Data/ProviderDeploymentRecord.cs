namespace TokenRouter.Admin.Data;

/// <summary>
/// A provider deployment added through Admin (one key and base URL of openai, deepseek or anthropic). The provider key
/// is stored only as a Data Protection payload (<see cref="ProtectedKey"/>) and shown only as <see cref="KeyHint"/>.
/// </summary>
public sealed class ProviderDeploymentRecord
{
    public Guid Id { get; set; }
    public required string Provider { get; set; }
    /// <summary>Unique per provider; gateways know it as <c>admin-{name}</c>.</summary>
    public required string Name { get; set; }
    public string? BaseUrl { get; set; }
    /// <summary><c>IDataProtector.Protect</c> of the key (purpose <c>ProviderDeploymentContract.KeyPurpose</c>).</summary>
    public required string ProtectedKey { get; set; }
    /// <summary>First and last few characters, e.g. <c>sk-...abcd</c>: enough to tell keys apart, not to use one.</summary>
    public required string KeyHint { get; set; }
    public double Weight { get; set; } = 1;
    public string? CacheGroup { get; set; }
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }
    /// <summary>Upstream requests in flight at once, per gateway replica; null = no cap.</summary>
    public int? MaxConcurrency { get; set; }
    public bool Enabled { get; set; } = true;
    /// <summary>Bumped on every change, so gateways (and operators) can tell a rotated key from the old one.</summary>
    public long Version { get; set; } = 1;
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? KeyRotatedAt { get; set; }
}
