using TokenRouter.Contracts;

namespace TokenRouter.Gateway.Auth;

/// <summary>
/// Who is calling: an API key's identity and its limits. Never holds the key itself. <see cref="QuotaUsd"/> is the key's
/// budget for each <see cref="BudgetDuration"/> period (its lifetime when null); <see cref="Team"/> the team whose budget
/// and limits apply on top of the key's own; <see cref="Models"/> the models the key may use (null = all).
/// <see cref="Tags"/> and <see cref="EndUser"/> are the one request's attribution (what for, on whose behalf), set per
/// request (Metering/RequestAttribution.cs) and carried to its usage record; the cached identity has none.
/// </summary>
public sealed record ClientIdentity(
    string KeyId,
    string Name,
    string KeyHash,
    decimal? QuotaUsd = null,
    int? RequestsPerMinute = null,
    int? TokensPerMinute = null,
    DateTimeOffset? ExpiresAt = null,
    BudgetDuration? BudgetDuration = null,
    TeamIdentity? Team = null,
    ModelAllowList? Models = null,
    string? Tags = null,
    string? EndUser = null)
{
    /// <summary>The dedup and cache scope of this key.</summary>
    public string Scope => KeyId;

    /// <summary>Whether both the key's and its team's allow-lists let <paramref name="model"/> through.</summary>
    public bool MayUse(string model) => (Models is null || Models.Allows(model)) && (Team?.Models is null || Team.Models.Allows(model));
}

/// <summary>A key's team as the gateway sees it: a budget, limits and an allow-list shared by all of its keys.</summary>
public sealed record TeamIdentity(
    string Id,
    string Name,
    decimal? BudgetUsd = null,
    BudgetDuration? BudgetDuration = null,
    int? RequestsPerMinute = null,
    int? TokensPerMinute = null,
    ModelAllowList? Models = null)
{
    /// <summary>The id of the team's quota and rate hashes (<see cref="RedisContract.TeamScope"/>).</summary>
    public string ScopeId => RedisContract.TeamScope(Id);
}

/// <summary>Allowed models: exact names and <c>prefix*</c> patterns, compared case-insensitively.</summary>
public sealed class ModelAllowList
{
    private readonly HashSet<string> _exact = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _prefixes = [];

    private ModelAllowList(IEnumerable<string> entries)
    {
        foreach (var entry in entries)
        {
            if (entry.EndsWith('*')) _prefixes.Add(entry[..^1]);
            else _exact.Add(entry);
        }
        Text = string.Join(',', entries);
    }

    /// <summary>The list as configured (comma-separated).</summary>
    public string Text { get; }

    /// <summary>Parses a comma-separated list; null when it is empty (no restriction).</summary>
    public static ModelAllowList? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var entries = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return entries.Length == 0 ? null : new ModelAllowList(entries);
    }

    public bool Allows(string model)
    {
        if (_exact.Contains(model)) return true;
        foreach (var prefix in _prefixes)
        {
            if (model.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }
}
