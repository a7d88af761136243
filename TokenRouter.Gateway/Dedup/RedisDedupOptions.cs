using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Configuration;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// Dedup across replicas through Redis (section <c>Dedup</c>; durations accept .NET TimeSpan text or Go style, <c>500ms</c>,
/// <c>5s</c>). Used only when Redis is configured.
/// </summary>
public sealed class RedisDedupOptions
{
    public const string SectionName = "Dedup";

    /// <summary>
    /// Lifetime of the leader's claim on a request. The leader refreshes it while its call runs (every third of it, at
    /// most every second), so it only runs out when the leader died: a dead leader is noticed about this long after.
    /// </summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a follower hears nothing before it checks whether the leader's claim is still alive.</summary>
    public TimeSpan LeaderWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a response's events stay in Redis after its last write (followers read it within milliseconds).</summary>
    public TimeSpan Retention { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Longest pause between two reads of a follower that hears nothing (it starts at 2 ms and doubles). Followers are woken
    /// by a message after each write of the leader; polling only covers a message lost to a reconnect.
    /// </summary>
    public TimeSpan MaxPollInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Reads the section, accepting Go-style durations as the rest of the configuration does.</summary>
    internal static void Bind(IConfiguration section, RedisDedupOptions options)
    {
        options.Lease = Read(section, nameof(Lease), options.Lease);
        options.LeaderWait = Read(section, nameof(LeaderWait), options.LeaderWait);
        options.Retention = Read(section, nameof(Retention), options.Retention);
        options.MaxPollInterval = Read(section, nameof(MaxPollInterval), options.MaxPollInterval);
    }

    private static TimeSpan Read(IConfiguration section, string name, TimeSpan fallback)
    {
        var text = section[name];
        if (string.IsNullOrWhiteSpace(text)) return fallback;
        // An unparsable value becomes negative so the validator names it instead of it being silently ignored.
        return DurationParser.TryParse(text, out var value) ? value : TimeSpan.MinValue;
    }
}

internal sealed class RedisDedupOptionsValidator : IValidateOptions<RedisDedupOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisDedupOptions o)
    {
        var errors = new List<string>();
        if (o.Lease < TimeSpan.FromMilliseconds(300)) errors.Add("Dedup:Lease must be a duration of at least 300ms, e.g. 10s.");
        if (o.LeaderWait <= TimeSpan.Zero) errors.Add("Dedup:LeaderWait must be a positive duration, e.g. 5s.");
        if (o.Retention < TimeSpan.FromSeconds(1)) errors.Add("Dedup:Retention must be a duration of at least 1s, e.g. 30s.");
        if (o.MaxPollInterval < TimeSpan.FromMilliseconds(1) || o.MaxPollInterval > TimeSpan.FromSeconds(1))
            errors.Add("Dedup:MaxPollInterval must be between 1ms and 1s, e.g. 20ms.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
