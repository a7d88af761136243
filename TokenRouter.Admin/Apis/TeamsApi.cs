using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.KeySync;
using TokenRouter.Admin.Quotas;
using TokenRouter.Contracts;
using JsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace TokenRouter.Admin.Apis;

/// <summary>
/// <c>/admin/teams</c>: teams whose budget (per period), RPM/TPM and allowed models are shared by their keys. Every
/// change republishes the team's keys to Redis, where gateways read the team with the key.
/// </summary>
public static partial class TeamsApi
{
    public const int MaxNameLength = 200;

    private static readonly string[] UpdatableFields = ["name", "budget_usd", "budget_duration", "rpm_limit", "tpm_limit", "models"];

    public static RouteGroupBuilder MapTeamsApi(this RouteGroupBuilder admin)
    {
        var teams = admin.MapGroup("/teams").WithTags("Teams");
        teams.MapPost("", CreateAsync).WithName("CreateTeam")
            .WithSummary("Creates a team: a budget (per period), RPM/TPM and allowed models shared by its keys.")
            .ProducesProblem(StatusCodes.Status409Conflict);
        teams.MapGet("", ListAsync).WithName("ListTeams").WithSummary("Lists teams.");
        teams.MapGet("/{id:guid}", GetAsync).WithName("GetTeam")
            .WithSummary("A team with its budget report: the current period, its spend and the next reset.");
        teams.MapPatch("/{id:guid}", UpdateAsync).WithName("UpdateTeam")
            .WithSummary("Changes a team; only the fields sent change, an explicit null removes a limit. Its keys are republished.")
            .Accepts<UpdateTeamRequest>("application/json")
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        teams.MapDelete("/{id:guid}", DeleteAsync).WithName("DeleteTeam")
            .WithSummary("Deletes a team; its keys stay, without a team.");
        return admin;
    }

    internal static async Task<Results<Created<TeamResponse>, ValidationProblem, ProblemHttpResult>> CreateAsync(
        CreateTeamRequest request, AdminDbContext db, TimeProvider time, CancellationToken cancellationToken)
    {
        var present = new HashSet<string>(UpdatableFields, StringComparer.Ordinal);
        var errors = Validate(new UpdateTeamRequest(request.Name, request.BudgetUsd, request.BudgetDuration, request.RpmLimit,
            request.TpmLimit, request.Models), present);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The team request is not valid.");
        }
        var name = request.Name!.Trim();
        if (await db.Teams.AnyAsync(t => t.Name == name, cancellationToken))
        {
            return NameTaken(name);
        }

        var now = time.GetUtcNow();
        var team = new Team
        {
            Id = Guid.CreateVersion7(now),
            Name = name,
            BudgetUsd = request.BudgetUsd is { } budget ? Math.Round(budget, 10) : null,
            BudgetDuration = ApiKeysApi.NormalizeDuration(request.BudgetDuration),
            RequestsPerMinute = request.RpmLimit,
            TokensPerMinute = request.TpmLimit,
            Models = ModelList.Join(request.Models),
            CreatedAt = new DateTimeOffset(now.UtcTicks - now.UtcTicks % 10, TimeSpan.Zero),
        };
        db.Teams.Add(team);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            return NameTaken(name); // a concurrent create won the unique name
        }
        return TypedResults.Created($"/admin/teams/{team.Id}", TeamResponse.From(team, 0));
    }

    internal static async Task<Ok<TeamResponse[]>> ListAsync(AdminDbContext db, CancellationToken cancellationToken)
    {
        var teams = await db.Teams.AsNoTracking().OrderBy(t => t.CreatedAt).ToListAsync(cancellationToken);
        var counts = await db.ApiKeys.AsNoTracking().Where(k => k.TeamId != null && k.RevokedAt == null)
            .GroupBy(k => k.TeamId!.Value).Select(g => new { g.Key, Count = g.Count() })
            .ToDictionaryAsync(g => g.Key, g => g.Count, cancellationToken);
        return TypedResults.Ok(teams.Select(t => TeamResponse.From(t, counts.GetValueOrDefault(t.Id))).ToArray());
    }

    internal static async Task<Results<Ok<TeamResponse>, NotFound>> GetAsync(
        Guid id, AdminDbContext db, BudgetLedger ledger, CancellationToken cancellationToken)
    {
        var team = await db.Teams.AsNoTracking().SingleOrDefaultAsync(t => t.Id == id, cancellationToken);
        if (team is null)
        {
            return TypedResults.NotFound();
        }
        var keys = await db.ApiKeys.CountAsync(k => k.TeamId == id && k.RevokedAt == null, cancellationToken);
        return TypedResults.Ok(TeamResponse.From(team, keys) with { Budget = await ledger.TeamReportAsync(team, cancellationToken) });
    }

    /// <summary>PATCH with merge semantics, read by hand like the keys' (absent keeps a field, null removes it).</summary>
    internal static async Task<Results<Ok<TeamResponse>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateAsync(
        Guid id, HttpRequest httpRequest, AdminDbContext db, KeyPublisher publisher, QuotaSpendSeeder seeder,
        KeySyncQueue queue, IOptions<JsonOptions> jsonOptions, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var body = await PatchBody<UpdateTeamRequest>.ReadAsync(httpRequest, UpdatableFields, "team", jsonOptions.Value.SerializerOptions, cancellationToken);
        if (body.Problem is { } problem) return problem;
        if (body.Invalid is { } invalid) return invalid;
        var (request, present) = (body.Request!, body.Present);

        var team = await db.Teams.SingleOrDefaultAsync(t => t.Id == id, cancellationToken);
        if (team is null)
        {
            return TypedResults.NotFound();
        }
        var errors = Validate(request, present);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The team update is not valid.");
        }
        if (present.Contains("name"))
        {
            var name = request.Name!.Trim();
            if (name != team.Name && await db.Teams.AnyAsync(t => t.Name == name, cancellationToken))
            {
                return NameTaken(name);
            }
            team.Name = name;
        }
        var reseed = (team.BudgetUsd is null && present.Contains("budget_usd") && request.BudgetUsd is not null)
            || (present.Contains("budget_duration") && ApiKeysApi.NormalizeDuration(request.BudgetDuration) != team.BudgetDuration);
        if (present.Contains("budget_usd"))
        {
            team.BudgetUsd = request.BudgetUsd is { } budget ? Math.Round(budget, 10) : null;
        }
        if (present.Contains("budget_duration"))
        {
            team.BudgetDuration = ApiKeysApi.NormalizeDuration(request.BudgetDuration);
        }
        if (present.Contains("rpm_limit"))
        {
            team.RequestsPerMinute = request.RpmLimit;
        }
        if (present.Contains("tpm_limit"))
        {
            team.TokensPerMinute = request.TpmLimit;
        }
        if (present.Contains("models"))
        {
            team.Models = ModelList.Join(request.Models);
        }
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            return NameTaken(team.Name);
        }

        if (reseed && team.BudgetUsd is not null)
        {
            await SeedAsync(seeder, queue, team, loggers, cancellationToken);
        }
        var keyIds = await db.ApiKeys.AsNoTracking().Where(k => k.TeamId == id).Select(k => k.Id).ToListAsync(cancellationToken);
        await publisher.PublishKeysAsync(keyIds, cancellationToken);
        var keys = await db.ApiKeys.CountAsync(k => k.TeamId == id && k.RevokedAt == null, cancellationToken);
        return TypedResults.Ok(TeamResponse.From(team, keys));
    }

    internal static async Task<Results<NoContent, NotFound>> DeleteAsync(
        Guid id, AdminDbContext db, KeyPublisher publisher, CancellationToken cancellationToken)
    {
        var team = await db.Teams.SingleOrDefaultAsync(t => t.Id == id, cancellationToken);
        if (team is null)
        {
            return TypedResults.NotFound();
        }
        var keys = await db.ApiKeys.Where(k => k.TeamId == id).ToListAsync(cancellationToken);
        foreach (var key in keys)
        {
            key.TeamId = null;
        }
        db.Teams.Remove(team);
        await db.SaveChangesAsync(cancellationToken);
        await publisher.PublishKeysAsync(keys.Select(k => k.Id).ToList(), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task SeedAsync(QuotaSpendSeeder seeder, KeySyncQueue queue, Team team, ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        try
        {
            await seeder.SeedTeamAsync(team, cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSeedDeferred(loggers.CreateLogger(typeof(TeamsApi)), team.Id, e.Message);
            queue.EnqueueResync(RedisResync.QuotaSpend);
        }
    }

    private static ProblemHttpResult NameTaken(string name) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The team name is taken.",
            detail: $"A team named '{name}' already exists.");

    internal static Dictionary<string, string[]> Validate(UpdateTeamRequest request, IReadOnlySet<string> present)
    {
        var errors = new Dictionary<string, string[]>();
        if (present.Contains("name"))
        {
            if (string.IsNullOrWhiteSpace(request.Name))
            {
                errors["name"] = ["A name is required."];
            }
            else if (request.Name.Trim().Length > MaxNameLength)
            {
                errors["name"] = [$"The name must be at most {MaxNameLength} characters."];
            }
        }
        if (present.Contains("budget_usd") && request.BudgetUsd is < 0 or > ApiKeysApi.MaxQuotaUsd)
        {
            errors["budget_usd"] = [$"The budget must be between 0 and {ApiKeysApi.MaxQuotaUsd:0} USD (null means unlimited)."];
        }
        if (present.Contains("budget_duration") && request.BudgetDuration is not null && !BudgetDuration.TryParse(request.BudgetDuration, out _))
        {
            errors["budget_duration"] = [$"Must be {BudgetDuration.Syntax} (null means the budget is for the team's lifetime)."];
        }
        if (present.Contains("rpm_limit") && request.RpmLimit <= 0)
        {
            errors["rpm_limit"] = ["The requests-per-minute limit must be positive (null means unlimited)."];
        }
        if (present.Contains("tpm_limit") && request.TpmLimit <= 0)
        {
            errors["tpm_limit"] = ["The tokens-per-minute limit must be positive (null means unlimited)."];
        }
        if (present.Contains("models") && ModelList.Validate(request.Models) is { } modelsError)
        {
            errors["models"] = [modelsError];
        }
        return errors;
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not seed the budget spend of team {TeamId} in Redis ({Reason}); a background resync is queued")]
    private static partial void LogSeedDeferred(ILogger logger, Guid teamId, string reason);
}
