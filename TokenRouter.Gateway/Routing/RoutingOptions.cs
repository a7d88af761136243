using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Routing;

/// <summary>Failover, cool-down, fallbacks and model groups (section <c>Routing</c>; <c>TOKENROUTER_FALLBACKS</c> and
/// <c>TOKENROUTER_MODEL_GROUPS</c> are aliases of <see cref="Fallbacks"/> and <see cref="ModelGroups"/>).</summary>
public sealed class RoutingOptions
{
    public const string SectionName = "Routing";

    /// <summary>Upstream attempts per request and provider, the first included (deployments first, then the same again).</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Base of the jittered exponential backoff before a deployment is tried again (another deployment is tried at once).</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A provider's <c>Retry-After</c> up to this long is waited for when no other deployment is left; a longer one
    /// goes to the client as the provider's 429/503.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Consecutive failures (connection, timeout, 5xx, 429 without <c>Retry-After</c>) that cool a deployment down.
    /// A 401/403 cools it at once; a 429 with <c>Retry-After</c> for that long.</summary>
    public int FailureThreshold { get; set; } = 3;

    /// <summary>First cool-down; it doubles each time a probe fails, up to <see cref="MaxCooldown"/>.</summary>
    public TimeSpan Cooldown { get; set; } = TimeSpan.FromSeconds(30);

    public TimeSpan MaxCooldown { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Model → the models to try, in order, when every deployment of its provider failed.</summary>
    public Dictionary<string, string[]> Fallbacks { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The fallbacks of <paramref name="model"/>; null when it has none (the common case, no allocation).</summary>
    public string[]? FallbacksFor(string model) =>
        Fallbacks.Count > 0 && Fallbacks.TryGetValue(model, out var models) && models.Length > 0 ? models : null;

    /// <summary>Alias → member models: a request for the alias is served by its first member, the others are its fallbacks.</summary>
    public Dictionary<string, string[]> ModelGroups { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The members of group <paramref name="model"/>; null when it is not a group (the common case, no allocation).</summary>
    public string[]? GroupFor(string model) =>
        ModelGroups.Count > 0 && ModelGroups.TryGetValue(model, out var members) && members.Length > 0 ? members : null;
}

/// <summary>What can be checked of the options alone; what the model routes say of groups:
/// <see cref="Providers.ModelGroupRoutesValidator"/>.</summary>
public sealed class RoutingOptionsValidator : IValidateOptions<RoutingOptions>
{
    public ValidateOptionsResult Validate(string? name, RoutingOptions o)
    {
        var errors = new List<string>();
        if (o.MaxAttempts is < 1 or > 20) errors.Add("Routing:MaxAttempts must be between 1 and 20.");
        if (o.RetryBaseDelay < TimeSpan.Zero || o.RetryBaseDelay > TimeSpan.FromMinutes(1)) errors.Add("Routing:RetryBaseDelay must be between 0 and 1m.");
        if (o.MaxRetryAfter < TimeSpan.Zero) errors.Add("Routing:MaxRetryAfter must not be negative.");
        if (o.FailureThreshold < 1) errors.Add("Routing:FailureThreshold must be at least 1.");
        if (o.Cooldown <= TimeSpan.Zero) errors.Add("Routing:Cooldown must be positive, e.g. 30s.");
        if (o.MaxCooldown < o.Cooldown) errors.Add("Routing:MaxCooldown must be at least Routing:Cooldown.");
        foreach (var (model, fallbacks) in o.Fallbacks)
        {
            if (fallbacks is null || fallbacks.Any(string.IsNullOrWhiteSpace))
                errors.Add($"Routing:Fallbacks:{model} (TOKENROUTER_FALLBACKS) must list model names.");
            else if (fallbacks.Contains(model, StringComparer.OrdinalIgnoreCase))
                errors.Add($"Routing:Fallbacks:{model} (TOKENROUTER_FALLBACKS) must not fall back to itself.");
        }
        foreach (var (group, members) in o.ModelGroups)
        {
            var at = $"Routing:ModelGroups:{group} (TOKENROUTER_MODEL_GROUPS)";
            if (members is null || members.Length == 0 || members.Any(string.IsNullOrWhiteSpace))
            {
                errors.Add($"{at} must list one or more model names.");
                continue;
            }
            if (members.Distinct(StringComparer.OrdinalIgnoreCase).Count() != members.Length) errors.Add($"{at} lists a model twice.");
            if (o.Fallbacks.ContainsKey(group))
                errors.Add($"{at}: '{group}' has Routing:Fallbacks too; a group's members after the first are its fallbacks.");
            foreach (var member in members)
            {
                if (member.Equals(group, StringComparison.OrdinalIgnoreCase) || o.ModelGroups.ContainsKey(member))
                    errors.Add($"{at}: member '{member}' is a group (groups do not nest).");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
