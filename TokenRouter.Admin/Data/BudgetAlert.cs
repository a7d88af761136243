namespace TokenRouter.Admin.Data;

/// <summary>
/// That a budget crossed a threshold in a period. The unique (event, subject, period start, threshold) row is what makes
/// each alert fire once per period, however many batches or Admin replicas see the crossing.
/// </summary>
public sealed class BudgetAlert
{
    /// <summary><see cref="PeriodStart"/> of a lifetime budget (no <c>budget_duration</c>): a value, so the unique index holds.</summary>
    public static readonly DateTimeOffset LifetimePeriodStart = DateTimeOffset.UnixEpoch;

    public Guid Id { get; set; }
    public required string Event { get; set; }

    /// <summary><c>key</c> or <c>team</c>.</summary>
    public required string SubjectType { get; set; }
    public Guid SubjectId { get; set; }
    public DateTimeOffset PeriodStart { get; set; }
    public int Threshold { get; set; }
    public decimal SpentUsd { get; set; }
    public decimal BudgetUsd { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
