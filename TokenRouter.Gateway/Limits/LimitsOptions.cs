using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// Section <c>Limits</c>; the seed's <c>RATE_LIMIT_ENABLED</c>, <c>GLOBAL_CONCURRENT_LIMIT</c>,
/// <c>STREAM_CONCURRENT_LIMIT</c>, <c>NON_STREAM_CONCURRENT_LIMIT</c> and <c>PROVIDER_CONCURRENT_LIMIT</c> are aliases.
/// Concurrency limits are per gateway process; 0 means unlimited.
/// </summary>
public sealed class LimitsOptions
{
    public const string SectionName = "Limits";

    /// <summary>Switches concurrency limits and per-key RPM/TPM on or off. Quotas are money and always apply.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Requests forwarded upstream at once by this process, streaming or not.</summary>
    public int GlobalConcurrent { get; set; }

    public int StreamConcurrent { get; set; }

    public int NonStreamConcurrent { get; set; }

    /// <summary>Requests in flight to any one provider (each provider has its own counter).</summary>
    public int ProviderConcurrent { get; set; }

    /// <summary>
    /// Completion tokens assumed for the worst-case quota reservation of a request that sets no <c>max_tokens</c>.
    /// </summary>
    public int QuotaDefaultMaxTokens { get; set; } = 4096;

    /// <summary>
    /// How long a quota reservation may stay unsettled before another request releases it: covers the longest
    /// stream, and bounds what a gateway that died mid-request keeps reserved.
    /// </summary>
    public TimeSpan QuotaReservationTtl { get; set; } = TimeSpan.FromHours(1);
}

public sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions o)
    {
        var errors = new List<string>();
        if (o.GlobalConcurrent < 0) errors.Add("Limits:GlobalConcurrent (GLOBAL_CONCURRENT_LIMIT) must be 0 (unlimited) or positive.");
        if (o.StreamConcurrent < 0) errors.Add("Limits:StreamConcurrent (STREAM_CONCURRENT_LIMIT) must be 0 (unlimited) or positive.");
        if (o.NonStreamConcurrent < 0) errors.Add("Limits:NonStreamConcurrent (NON_STREAM_CONCURRENT_LIMIT) must be 0 (unlimited) or positive.");
        if (o.ProviderConcurrent < 0) errors.Add("Limits:ProviderConcurrent (PROVIDER_CONCURRENT_LIMIT) must be 0 (unlimited) or positive.");
        if (o.QuotaDefaultMaxTokens < 1) errors.Add("Limits:QuotaDefaultMaxTokens must be positive.");
        if (o.QuotaReservationTtl < TimeSpan.FromMinutes(1)) errors.Add("Limits:QuotaReservationTtl must be at least 1 minute, e.g. 01:00:00.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
