using Microsoft.Extensions.Options;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Configuration;

/// <summary>
/// Section <c>Budgets</c> (or <c>BUDGET_TIME_ZONE</c>): the time zone in which calendar budget periods (<c>1d</c>, <c>1w</c>,
/// <c>1mo</c>) start. It must be the gateways' zone too: Admin reports and re-seeds the periods they enforce.
/// </summary>
public sealed class AdminBudgetsOptions
{
    public const string SectionName = "Budgets";
    public const string AliasVariable = "BUDGET_TIME_ZONE";

    public string TimeZone { get; set; } = "UTC";
}

public sealed class AdminBudgetsOptionsValidator : IValidateOptions<AdminBudgetsOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminBudgetsOptions options) =>
        BudgetPeriods.TryFindTimeZone(options.TimeZone, out _)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(
                $"Budgets:TimeZone (BUDGET_TIME_ZONE) '{options.TimeZone}' is not a known time zone; use an IANA id such as UTC or Europe/Berlin.");
}
