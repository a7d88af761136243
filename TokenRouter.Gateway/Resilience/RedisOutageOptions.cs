using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Resilience;

/// <summary>What per-key quotas and RPM/TPM do while Redis is unreachable (<c>REDIS_OUTAGE_POLICY</c>).</summary>
public enum RedisOutagePolicy
{
    /// <summary>Keep serving: RPM/TPM counted per replica, quotas bounded by each key's last known remaining budget.</summary>
    FailOpen,

    /// <summary>Refuse every request that a quota or RPM/TPM applies to with 503 + Retry-After until Redis answers.</summary>
    FailClosed,
}

/// <summary>
/// Section <c>RedisOutage</c>; the seed-style <c>REDIS_OUTAGE_POLICY</c> (<c>fail-open</c> | <c>fail-closed</c>) is an
/// alias of <see cref="Policy"/>. Keys with no quota and no RPM/TPM, and concurrency limits, never depend on Redis.
/// </summary>
public sealed class RedisOutageOptions
{
    public const string SectionName = "RedisOutage";

    /// <summary><c>fail-open</c> (default) or <c>fail-closed</c>.</summary>
    public string Policy { get; set; } = "fail-open";

    /// <summary>
    /// Once Redis is known to be down, how long calls skip it (no added latency) before one request probes it again.
    /// </summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Seconds a fail-closed refusal asks the client to wait (<c>Retry-After</c>).</summary>
    public int RetryAfterSeconds { get; set; } = 2;

    public RedisOutagePolicy ParsedPolicy => TryParse(Policy, out var p) ? p : RedisOutagePolicy.FailOpen;

    public static bool TryParse(string? value, out RedisOutagePolicy policy)
    {
        switch (value?.Trim().ToLowerInvariant())
        {
            case "fail-open" or "failopen" or "open":
                policy = RedisOutagePolicy.FailOpen;
                return true;
            case "fail-closed" or "failclosed" or "closed":
                policy = RedisOutagePolicy.FailClosed;
                return true;
            default:
                policy = RedisOutagePolicy.FailOpen;
                return false;
        }
    }
}

public sealed class RedisOutageOptionsValidator : IValidateOptions<RedisOutageOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisOutageOptions o)
    {
        var errors = new List<string>();
        if (!RedisOutageOptions.TryParse(o.Policy, out _))
            errors.Add($"RedisOutage:Policy (REDIS_OUTAGE_POLICY) must be 'fail-open' or 'fail-closed', not '{o.Policy}'.");
        // Polly's circuit breaker needs at least half a second.
        if (o.ProbeInterval < TimeSpan.FromMilliseconds(500) || o.ProbeInterval > TimeSpan.FromMinutes(5))
            errors.Add("RedisOutage:ProbeInterval must be between 500 ms and 5 minutes, e.g. 00:00:02.");
        if (o.RetryAfterSeconds is < 1 or > 3600) errors.Add("RedisOutage:RetryAfterSeconds must be between 1 and 3600.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
