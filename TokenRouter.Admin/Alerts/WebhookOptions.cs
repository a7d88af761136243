using System.Globalization;
using Microsoft.Extensions.Options;

namespace TokenRouter.Admin.Alerts;

/// <summary>
/// Delivery of budget alert webhooks (section <c>Admin:Webhooks</c>; <c>WEBHOOK_MAX_ATTEMPTS</c>, <c>WEBHOOK_TIMEOUT</c>,
/// <c>WEBHOOK_RETRY_DELAY</c>, <c>WEBHOOK_MAX_RETRY_DELAY</c> as aliases).
/// </summary>
public sealed class WebhookOptions
{
    public const string SectionName = "Admin:Webhooks";
    public const string HttpClientName = "webhooks";

    /// <summary>Alias variable → property, applied when the section does not set the property itself.</summary>
    internal static readonly (string Variable, string Property)[] Aliases =
    [
        ("WEBHOOK_MAX_ATTEMPTS", nameof(MaxAttempts)),
        ("WEBHOOK_TIMEOUT", nameof(Timeout)),
        ("WEBHOOK_RETRY_DELAY", nameof(RetryDelay)),
        ("WEBHOOK_MAX_RETRY_DELAY", nameof(MaxRetryDelay)),
    ];

    /// <summary>Off: alerts are still recorded and queued, but this replica sends nothing.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Attempts per delivery, the first included; after the last one it is marked failed.</summary>
    public int MaxAttempts { get; set; } = 8;

    /// <summary>How long one attempt may take (connect, send, response headers).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>First pause between attempts; doubles (jittered) up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often the outbox is scanned for due deliveries.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Requests sent at the same time by this replica (deliveries waiting out a back-off hold none).</summary>
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>
    /// Reads the alias variables (Go-style durations allowed: <c>10s</c>, <c>2m</c>) into <paramref name="options"/> where the
    /// section left a property unset.
    /// </summary>
    internal static void ApplyAliases(WebhookOptions options, IConfiguration configuration)
    {
        foreach (var (variable, property) in Aliases)
        {
            if (configuration[variable] is not { Length: > 0 } value || configuration[$"{SectionName}:{property}"] is { Length: > 0 })
            {
                continue;
            }
            switch (property)
            {
                case nameof(MaxAttempts):
                    options.MaxAttempts = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : -1;
                    break;
                default:
                    var duration = ParseDuration(value) ?? TimeSpan.MinValue;
                    if (property == nameof(Timeout)) options.Timeout = duration;
                    else if (property == nameof(RetryDelay)) options.RetryDelay = duration;
                    else options.MaxRetryDelay = duration;
                    break;
            }
        }
    }

    /// <summary><c>90s</c>, <c>2m</c>, <c>1h</c>, <c>500ms</c> or <c>hh:mm:ss</c>; null when neither.</summary>
    internal static TimeSpan? ParseDuration(string text)
    {
        var s = text.Trim();
        if (s.Contains(':'))
        {
            return TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out var span) ? span : null;
        }
        (string Suffix, double Factor)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        foreach (var (suffix, factor) in units)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(s[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            {
                return TimeSpan.FromMilliseconds(number * factor);
            }
        }
        return null;
    }
}

public sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions options)
    {
        const string s = WebhookOptions.SectionName;
        var failures = new List<string>();
        if (options.MaxAttempts is < 1 or > 100)
        {
            failures.Add($"{s}:{nameof(options.MaxAttempts)} (WEBHOOK_MAX_ATTEMPTS) must be between 1 and 100.");
        }
        if (options.Timeout <= TimeSpan.Zero || options.Timeout > TimeSpan.FromMinutes(5))
        {
            failures.Add($"{s}:{nameof(options.Timeout)} (WEBHOOK_TIMEOUT) must be between 1ms and 5m, e.g. 10s.");
        }
        if (options.RetryDelay <= TimeSpan.Zero || options.MaxRetryDelay < options.RetryDelay || options.MaxRetryDelay > TimeSpan.FromDays(1))
        {
            failures.Add($"{s}:{nameof(options.RetryDelay)} (WEBHOOK_RETRY_DELAY) must be positive and " +
                $"{nameof(options.MaxRetryDelay)} (WEBHOOK_MAX_RETRY_DELAY) at least as long and at most 1 day.");
        }
        if (options.PollInterval <= TimeSpan.Zero)
        {
            failures.Add($"{s}:{nameof(options.PollInterval)} must be positive.");
        }
        if (options.MaxConcurrency is < 1 or > 256)
        {
            failures.Add($"{s}:{nameof(options.MaxConcurrency)} must be between 1 and 256.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
