using Microsoft.Extensions.Options;
using TokenRouter.Contracts;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// Section <c>Budgets</c> (alias <c>BUDGET_TIME_ZONE</c>): the time zone in which calendar budget periods (<c>1d</c>,
/// <c>1w</c>, <c>1mo</c>) start at midnight. Admin must be configured with the same zone.
/// </summary>
public sealed class BudgetsOptions
{
    public const string SectionName = "Budgets";

    /// <summary>An IANA (or Windows) time zone id; <c>UTC</c> by default.</summary>
    public string TimeZone { get; set; } = "UTC";
}

public sealed class BudgetsOptionsValidator : IValidateOptions<BudgetsOptions>
{
    public ValidateOptionsResult Validate(string? name, BudgetsOptions options) =>
        BudgetPeriods.TryFindTimeZone(options.TimeZone, out _)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"Budgets:TimeZone (BUDGET_TIME_ZONE) '{options.TimeZone}' is not a known time zone; use an IANA id such as UTC or Europe/Berlin.");
}
