namespace TokenRouter.Admin.Data;

/// <summary>A client key. Only its SHA-256 is stored; the key itself is shown once, at creation.</summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }
    public required string Name { get; set; }

    /// <summary>Lower-case hex SHA-256 of the key (<c>RedisContract.HashClientKey</c>).</summary>
    public required string KeyHash { get; set; }

    /// <summary>The first characters of the key, so people can tell keys apart without the secret.</summary>
    public required string KeyPrefix { get; set; }

    /// <summary>USD budget; null means unlimited.</summary>
    public decimal? QuotaUsd { get; set; }
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }
    /// <summary><c>TokenRouter.Contracts.BudgetDuration</c> text: the quota is per period of it; null = lifetime.</summary>
    public string? BudgetDuration { get; set; }

    /// <summary>Allowed models, comma-separated, <c>prefix*</c> patterns allowed; null = every model.</summary>
    public string? Models { get; set; }

    /// <summary>The key's team (its budget and limits apply on top of the key's own); null = none.</summary>
    public Guid? TeamId { get; set; }
    public Team? Team { get; set; }
    public bool Enabled { get; set; } = true;
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }

    /// <summary>Whether the gateway should accept the key at <paramref name="now"/>.</summary>
    public bool IsActiveAt(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);
}
