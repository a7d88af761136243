using Microsoft.Extensions.Options;

namespace TokenRouter.Admin.Ledger;

/// <summary>How the usage stream is drained into Postgres (section <c>Admin:Ledger</c>).</summary>
public sealed class UsageLedgerOptions
{
    public const string SectionName = "Admin:Ledger";
    public const int MaxBatchSize = 10_000;

    /// <summary>Off only for a read-only Admin (reports against a ledger another Admin replica fills).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// This replica's consumer name in the group. It must be stable across restarts (its unacknowledged entries are
    /// re-read by name at start) and distinct per replica; the machine name by default.
    /// </summary>
    public string? ConsumerName { get; set; }

    /// <summary>Entries per XREADGROUP and per Postgres transaction.</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>Pause after an empty read. Reads never BLOCK: the multiplexer is shared with every other command.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Entries another consumer (a replica that died) has held unacknowledged this long are claimed.</summary>
    public TimeSpan ClaimIdleTime { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>First pause after a Redis or Postgres failure; doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the backlog (group lag and pending count) is read from Redis for metrics.</summary>
    public TimeSpan StatusInterval { get; set; } = TimeSpan.FromSeconds(5);

    public string ResolvedConsumerName =>
        string.IsNullOrWhiteSpace(ConsumerName) ? "admin-" + Environment.MachineName : ConsumerName.Trim();
}

public sealed class UsageLedgerOptionsValidator : IValidateOptions<UsageLedgerOptions>
{
    public ValidateOptionsResult Validate(string? name, UsageLedgerOptions options)
    {
        const string s = UsageLedgerOptions.SectionName;
        var failures = new List<string>();
        if (options.BatchSize is < 1 or > UsageLedgerOptions.MaxBatchSize)
        {
            failures.Add($"{s}:{nameof(options.BatchSize)} must be between 1 and {UsageLedgerOptions.MaxBatchSize}.");
        }
        if (options.PollInterval <= TimeSpan.Zero)
        {
            failures.Add($"{s}:{nameof(options.PollInterval)} must be positive.");
        }
        if (options.ClaimIdleTime <= TimeSpan.Zero)
        {
            failures.Add($"{s}:{nameof(options.ClaimIdleTime)} must be positive.");
        }
        if (options.RetryDelay <= TimeSpan.Zero || options.MaxRetryDelay < options.RetryDelay)
        {
            failures.Add($"{s}:{nameof(options.RetryDelay)} must be positive and {nameof(options.MaxRetryDelay)} at least as long.");
        }
        if (options.StatusInterval <= TimeSpan.Zero)
        {
            failures.Add($"{s}:{nameof(options.StatusInterval)} must be positive.");
        }
        if (options.ConsumerName is { Length: > 200 })
        {
            failures.Add($"{s}:{nameof(options.ConsumerName)} must be at most 200 characters.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
