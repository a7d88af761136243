using Microsoft.Extensions.Options;

namespace TokenRouter.Admin.Configuration;

/// <summary>How long start-up waits for PostgreSQL before giving up (section <c>Admin:Startup</c>).</summary>
public sealed class AdminStartupOptions
{
    public const string SectionName = "Admin:Startup";

    /// <summary>Total time to wait for PostgreSQL to answer before the process fails to start.</summary>
    public TimeSpan DatabaseWaitTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Pause between two connection attempts while waiting.</summary>
    public TimeSpan DatabaseRetryDelay { get; set; } = TimeSpan.FromSeconds(2);
}

public sealed class AdminStartupOptionsValidator : IValidateOptions<AdminStartupOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminStartupOptions options)
    {
        var failures = new List<string>();
        if (options.DatabaseWaitTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{AdminStartupOptions.SectionName}:{nameof(options.DatabaseWaitTimeout)} must be positive.");
        }
        if (options.DatabaseRetryDelay <= TimeSpan.Zero || options.DatabaseRetryDelay > options.DatabaseWaitTimeout)
        {
            failures.Add($"{AdminStartupOptions.SectionName}:{nameof(options.DatabaseRetryDelay)} must be positive and " +
                         $"no longer than {nameof(options.DatabaseWaitTimeout)}.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
