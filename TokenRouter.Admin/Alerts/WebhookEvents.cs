namespace TokenRouter.Admin.Alerts;

/// <summary>The events a webhook can receive, and the thresholds that raise them.</summary>
public static class WebhookEvents
{
    /// <summary>A key's or team's spend reached 50, 80 or 100 % of its budget in the current period.</summary>
    public const string BudgetThreshold = "budget.threshold";

    /// <summary>A key's spend reached its own budget: the gateways refuse it (429) until the next period.</summary>
    public const string KeyDisabledByBudget = "key.disabled_by_budget";

    public static readonly string[] All = [BudgetThreshold, KeyDisabledByBudget];

    public static readonly int[] ThresholdPercents = [50, 80, 100];

    public const string KeySubject = "key", TeamSubject = "team";
}
