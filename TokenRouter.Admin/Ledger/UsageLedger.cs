namespace TokenRouter.Admin.Ledger;

/// <summary>Ledger constants that are Admin's own (the shared ones live in <c>RedisContract</c>).</summary>
public static class UsageLedger
{
    /// <summary>
    /// Optional entry field: <c>"1"</c> when the gateway estimated the tokens because the provider's usage never
    /// arrived. Older gateways do not write it; absent means <c>"0"</c>.
    /// </summary>
    public const string EstimatedField = Contracts.RedisContract.UsageFields.Estimated;

    // Timestamps outside 2000-01-01 .. 9999-12-31 are a producer bug, not a request time.
    public const long MinTimestampMs = 946_684_800_000;
    public const long MaxTimestampMs = 253_402_300_799_999;
}
