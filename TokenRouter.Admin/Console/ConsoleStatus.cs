using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Console;

/// <summary>What the console shows as a key's status.</summary>
public enum KeyStatus { Active, Disabled, Expired, Revoked }

public static class KeyStatusExtensions
{
    public static KeyStatus StatusAt(this ApiKey key, DateTimeOffset now) =>
        key.RevokedAt is not null ? KeyStatus.Revoked
        : key.ExpiresAt is { } expires && expires <= now ? KeyStatus.Expired
        : !key.Enabled ? KeyStatus.Disabled
        : KeyStatus.Active;

    public static string Label(this KeyStatus status) => status switch
    {
        KeyStatus.Active => "Active",
        KeyStatus.Disabled => "Disabled",
        KeyStatus.Expired => "Expired",
        _ => "Revoked",
    };

    public static string CssClass(this KeyStatus status) => "badge badge-" + status.ToString().ToLowerInvariant();
}
