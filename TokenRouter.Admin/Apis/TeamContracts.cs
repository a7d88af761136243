using TokenRouter.Admin.Data;
using TokenRouter.Admin.Quotas;

namespace TokenRouter.Admin.Apis;

// Wire shapes of /admin/teams. Property names go out as snake_case (see AdminExtensions).

/// <summary>Body of <c>POST /admin/teams</c>. Absent limits mean "unlimited"; the name is required and unique.</summary>
/// <param name="BudgetUsd">USD shared by the team's keys, per <paramref name="BudgetDuration"/> period (lifetime when absent).</param>
/// <param name="BudgetDuration"><c>30s</c>, <c>1h</c>, <c>720h</c> (Go-style) or <c>1d</c>, <c>1w</c>, <c>1mo</c> (calendar).</param>
/// <param name="Models">Allowed models of every key of the team (exact names or <c>prefix*</c>); absent = every model.</param>
public sealed record CreateTeamRequest(
    string? Name,
    decimal? BudgetUsd = null,
    string? BudgetDuration = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    string[]? Models = null);

/// <summary>
/// Body of <c>PATCH /admin/teams/{id}</c>: only the fields present change; an explicit null removes <c>budget_usd</c>,
/// <c>budget_duration</c>, <c>rpm_limit</c>, <c>tpm_limit</c> or <c>models</c>.
/// </summary>
public sealed record UpdateTeamRequest(
    string? Name = null,
    decimal? BudgetUsd = null,
    string? BudgetDuration = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    string[]? Models = null);

/// <summary>A team; <see cref="Budget"/> (the current period, its spend and next reset) is filled in by <c>GET /admin/teams/{id}</c>.</summary>
public sealed record TeamResponse(
    Guid Id,
    string Name,
    decimal? BudgetUsd,
    string? BudgetDuration,
    int? RpmLimit,
    int? TpmLimit,
    string[]? Models,
    DateTimeOffset CreatedAt,
    int Keys,
    BudgetReport? Budget = null)
{
    public static TeamResponse From(Team team, int keys) => new(
        team.Id, team.Name, team.BudgetUsd.Trimmed(), team.BudgetDuration, team.RequestsPerMinute, team.TokensPerMinute,
        ModelList.Split(team.Models), team.CreatedAt, keys);
}
