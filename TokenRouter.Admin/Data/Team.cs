namespace TokenRouter.Admin.Data;

/// <summary>
/// A team: a budget, limits and an allow-list shared by its keys. Gateways see it copied into each of its keys' Redis
/// hashes, so a change to a team republishes its keys.
/// </summary>
public sealed class Team
{
    public Guid Id { get; set; }
    public required string Name { get; set; }

    /// <summary>USD budget shared by the team's keys, per <see cref="BudgetDuration"/> period (lifetime when null); null means unlimited.</summary>
    public decimal? BudgetUsd { get; set; }

    /// <summary><c>TokenRouter.Contracts.BudgetDuration</c> text (<c>30s</c>, <c>720h</c>, <c>1d</c>, <c>1w</c>, <c>1mo</c>); null = lifetime.</summary>
    public string? BudgetDuration { get; set; }
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }

    /// <summary>Allowed models, comma-separated, <c>prefix*</c> patterns allowed; null = every model.</summary>
    public string? Models { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
