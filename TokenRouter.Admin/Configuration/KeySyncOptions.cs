using Microsoft.Extensions.Options;

namespace TokenRouter.Admin.Configuration;

/// <summary>Retry pacing of the background key sync when Redis was unreachable at a write (section <c>Admin:KeySync</c>).</summary>
public sealed class KeySyncOptions
{
    public const string SectionName = "Admin:KeySync";

    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(60);
}

public sealed class KeySyncOptionsValidator : IValidateOptions<KeySyncOptions>
{
    public ValidateOptionsResult Validate(string? name, KeySyncOptions options) =>
        options.RetryDelay <= TimeSpan.Zero || options.MaxRetryDelay < options.RetryDelay
            ? ValidateOptionsResult.Fail(
                $"{KeySyncOptions.SectionName}: {nameof(options.RetryDelay)} must be positive and " +
                $"{nameof(options.MaxRetryDelay)} at least as long.")
            : ValidateOptionsResult.Success;
}
