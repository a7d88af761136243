using System.Buffers.Text;
using System.Security.Cryptography;
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

/// <summary><c>/admin/api-keys</c>: create (the key is shown once), list, get, update and revoke client keys.</summary>
public static partial class ApiKeysApi
{
    public const int MaxNameLength = 200;
    public const int KeyPrefixLength = 12;
    public const decimal MaxQuotaUsd = 1_000_000_000m;
    private const int KeyRandomBytes = 32;

    public static RouteGroupBuilder MapApiKeysApi(this RouteGroupBuilder admin)
    {
        var keys = admin.MapGroup("/api-keys").WithTags("API keys");
        keys.MapPost("", CreateAsync).WithName("CreateApiKey")
            .WithSummary("Creates a client key; the response is the only time the key is shown.");
        keys.MapGet("", ListAsync).WithName("ListApiKeys").WithSummary("Lists keys without their secrets.");
        keys.MapGet("/{id:guid}", GetAsync).WithName("GetApiKey");
        keys.MapPatch("/{id:guid}", UpdateAsync).WithName("UpdateApiKey")
            .WithSummary("Changes a key's name, limits, expiry or enabled flag; only the fields sent change.")
            .WithDescription("Fields: name, quota_usd, rpm_limit, tpm_limit, expires_at, enabled, budget_duration, models, team_id. " +
                             "An explicit null removes quota_usd, rpm_limit, tpm_limit, expires_at, budget_duration, models or team_id " +
                             "(unlimited / never expires / lifetime budget / every model / no team). Unknown fields are " +
                             "rejected. A revoked key cannot be enabled again: 409. The key is republished to Redis at once.")
            .Accepts<UpdateApiKeyRequest>("application/json")
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        keys.MapDelete("/{id:guid}", RevokeAsync).WithName("RevokeApiKey")
            .WithSummary("Revokes a key: the gateway stops accepting it.");
        return admin;
    }

    internal static async Task<Results<Created<CreatedApiKeyResponse>, ValidationProblem>> CreateAsync(
        CreateApiKeyRequest request, AdminDbContext db, KeyPublisher publisher, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var errors = Validate(request, now);
        Team? team = null;
        if (request.TeamId is { } teamId)
        {
            team = await db.Teams.SingleOrDefaultAsync(t => t.Id == teamId, cancellationToken);
            if (team is null)
            {
                errors["team_id"] = ["No team has this id."];
            }
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The API key request is not valid.");
        }

        var secret = NewClientKey();
        var key = new ApiKey
        {
            Id = Guid.CreateVersion7(now),
            Name = request.Name!.Trim(),
            KeyHash = RedisContract.HashClientKey(secret),
            KeyPrefix = secret[..KeyPrefixLength],
            QuotaUsd = request.QuotaUsd is { } quota ? Math.Round(quota, 10) : null, // the column's scale
            RequestsPerMinute = request.RpmLimit,
            TokensPerMinute = request.TpmLimit,
            Enabled = true,
            // timestamptz takes UTC only; truncate to what Postgres stores (microseconds) so responses match later reads.
            CreatedAt = TruncateToMicroseconds(now),
            ExpiresAt = request.ExpiresAt is { } expires ? TruncateToMicroseconds(expires.ToUniversalTime()) : null,
            BudgetDuration = NormalizeDuration(request.BudgetDuration),
            Models = ModelList.Join(request.Models),
            TeamId = team?.Id,
            Team = team,
        };

        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(cancellationToken);
        await publisher.PublishAsync(key);

        var response = new CreatedApiKeyResponse(
            key.Id, key.Name, secret, key.KeyPrefix, key.QuotaUsd, key.RequestsPerMinute, key.TokensPerMinute,
            key.Enabled, key.CreatedAt, key.ExpiresAt, key.BudgetDuration, ModelList.Split(key.Models), key.TeamId);
        return TypedResults.Created($"/admin/api-keys/{key.Id}", response);
    }

    internal static async Task<Ok<ApiKeyResponse[]>> ListAsync(AdminDbContext db, CancellationToken cancellationToken)
    {
        var keys = await db.ApiKeys.AsNoTracking().OrderBy(k => k.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(keys.Select(ApiKeyResponse.From).ToArray());
    }

    /// <summary>One key, with its budget report: the current period, its spend, and the next reset.</summary>
    internal static async Task<Results<Ok<ApiKeyResponse>, NotFound>> GetAsync(
        Guid id, AdminDbContext db, BudgetLedger ledger, CancellationToken cancellationToken)
    {
        var key = await db.ApiKeys.AsNoTracking().SingleOrDefaultAsync(k => k.Id == id, cancellationToken);
        return key is null
            ? TypedResults.NotFound()
            : TypedResults.Ok(ApiKeyResponse.From(key) with { Budget = await ledger.KeyReportAsync(key, cancellationToken) });
    }

    internal static async Task<Results<NoContent, NotFound>> RevokeAsync(
        Guid id, AdminDbContext db, KeyPublisher publisher, TimeProvider time, CancellationToken cancellationToken)
    {
        var key = await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == id, cancellationToken);
        if (key is null)
        {
            return TypedResults.NotFound();
        }

        // Idempotent: revoking twice keeps the first time and still makes sure Redis has forgotten the key.
        if (key.RevokedAt is null)
        {
            key.RevokedAt = TruncateToMicroseconds(time.GetUtcNow());
            key.Enabled = false;
            await db.SaveChangesAsync(cancellationToken);
        }

        await publisher.PublishAsync(key);
        return TypedResults.NoContent();
    }

    private static readonly string[] UpdatableFields =
        ["name", "quota_usd", "rpm_limit", "tpm_limit", "expires_at", "enabled", "budget_duration", "models", "team_id"];

    /// <summary>
    /// PATCH with merge semantics. The body is read by hand because "absent" (keep) and "null" (remove the limit) must
    /// be told apart, which a bound record cannot do; <see cref="UpdateApiKeyRequest"/> documents its shape.
    /// </summary>
    internal static async Task<Results<Ok<ApiKeyResponse>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateAsync(
        Guid id, HttpRequest httpRequest, AdminDbContext db, KeyPublisher publisher, QuotaSpendSeeder seeder,
        KeySyncQueue queue, IOptions<JsonOptions> jsonOptions, TimeProvider time, ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var body = await PatchBody<UpdateApiKeyRequest>.ReadAsync(httpRequest, UpdatableFields, "API key", jsonOptions.Value.SerializerOptions, cancellationToken);
        if (body.Problem is { } problem) return problem;
        if (body.Invalid is { } invalid) return invalid;
        var (request, present) = (body.Request!, body.Present);

        return await ApplyUpdateAsync(id, request, present, db, publisher, seeder, queue, time, loggers, cancellationToken);
    }

    /// <summary>
    /// The update itself, once the body is read: only the fields in <paramref name="present"/> change. Shared by the
    /// PATCH endpoint and the web console, so both validate, store and republish a key the same way.
    /// </summary>
    internal static async Task<Results<Ok<ApiKeyResponse>, NotFound, ValidationProblem, ProblemHttpResult>> ApplyUpdateAsync(
        Guid id, UpdateApiKeyRequest request, IReadOnlySet<string> present, AdminDbContext db, KeyPublisher publisher,
        QuotaSpendSeeder seeder, KeySyncQueue queue, TimeProvider time, ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var key = await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == id, cancellationToken);
        if (key is null)
        {
            return TypedResults.NotFound();
        }

        var now = time.GetUtcNow();
        var errors = ValidateUpdate(request, present, now);
        Team? team = null;
        if (present.Contains("team_id") && request.TeamId is { } teamId)
        {
            team = await db.Teams.SingleOrDefaultAsync(t => t.Id == teamId, cancellationToken);
            if (team is null)
            {
                errors["team_id"] = ["No team has this id."];
            }
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The API key update is not valid.");
        }
        if (request.Enabled is true && key.RevokedAt is not null)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The API key is revoked.",
                detail: "A revoked key cannot be enabled again; create a new key instead.");
        }

        // The gateway tracks spend only while a key has a quota, per period when it has a duration: a new quota or a new
        // period layout starts from what the ledger holds.
        var gainsQuota = (key.QuotaUsd is null && present.Contains("quota_usd") && request.QuotaUsd is not null)
            || (present.Contains("budget_duration") && NormalizeDuration(request.BudgetDuration) != key.BudgetDuration);
        if (present.Contains("name"))
        {
            key.Name = request.Name!.Trim();
        }
        if (present.Contains("quota_usd"))
        {
            key.QuotaUsd = request.QuotaUsd is { } quota ? Math.Round(quota, 10) : null;
        }
        if (present.Contains("rpm_limit"))
        {
            key.RequestsPerMinute = request.RpmLimit;
        }
        if (present.Contains("tpm_limit"))
        {
            key.TokensPerMinute = request.TpmLimit;
        }
        if (present.Contains("expires_at"))
        {
            key.ExpiresAt = request.ExpiresAt is { } expires ? TruncateToMicroseconds(expires.ToUniversalTime()) : null;
        }
        if (present.Contains("enabled"))
        {
            key.Enabled = request.Enabled!.Value;
        }
        if (present.Contains("budget_duration"))
        {
            key.BudgetDuration = NormalizeDuration(request.BudgetDuration);
        }
        if (present.Contains("models"))
        {
            key.Models = ModelList.Join(request.Models);
        }
        if (present.Contains("team_id"))
        {
            key.TeamId = team?.Id;
        }
        await db.SaveChangesAsync(cancellationToken);

        if (gainsQuota)
        {
            // The gateway tracks spend only while a key has a quota: start it from what the ledger already holds.
            await SeedSpendAsync(seeder, queue, key.Id, loggers, cancellationToken);
        }
        var current = await publisher.PublishCurrentAsync(key.Id, cancellationToken);
        return TypedResults.Ok(ApiKeyResponse.From(current ?? key));
    }

    private static async Task SeedSpendAsync(
        QuotaSpendSeeder seeder, KeySyncQueue queue, Guid keyId, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        try
        {
            await seeder.SeedAsync(keyId, cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSeedDeferred(loggers.CreateLogger(typeof(ApiKeysApi)), keyId, e.Message);
            queue.EnqueueResync(RedisResync.QuotaSpend);
        }
    }

    internal static Dictionary<string, string[]> ValidateUpdate(UpdateApiKeyRequest request, IReadOnlySet<string> present, DateTimeOffset now)
    {
        var errors = new Dictionary<string, string[]>();
        if (present.Contains("name"))
        {
            if (string.IsNullOrWhiteSpace(request.Name))
            {
                errors["name"] = ["The name cannot be empty or null."];
            }
            else if (request.Name.Trim().Length > MaxNameLength)
            {
                errors["name"] = [$"The name must be at most {MaxNameLength} characters."];
            }
        }
        if (present.Contains("quota_usd") && request.QuotaUsd is < 0 or > MaxQuotaUsd)
        {
            errors["quota_usd"] = [$"The quota must be between 0 and {MaxQuotaUsd:0} USD (null means unlimited)."];
        }
        if (present.Contains("rpm_limit") && request.RpmLimit <= 0)
        {
            errors["rpm_limit"] = ["The requests-per-minute limit must be positive (null means unlimited)."];
        }
        if (present.Contains("tpm_limit") && request.TpmLimit <= 0)
        {
            errors["tpm_limit"] = ["The tokens-per-minute limit must be positive (null means unlimited)."];
        }
        if (present.Contains("expires_at") && request.ExpiresAt <= now)
        {
            errors["expires_at"] = ["The expiry must be in the future (null means never)."];
        }
        if (present.Contains("enabled") && request.Enabled is null)
        {
            errors["enabled"] = ["enabled must be true or false."];
        }
        if (present.Contains("budget_duration") && request.BudgetDuration is not null && !BudgetDuration.TryParse(request.BudgetDuration, out _))
        {
            errors["budget_duration"] = [$"Must be {BudgetDuration.Syntax} (null means the quota is for the key's lifetime)."];
        }
        if (present.Contains("models") && ModelList.Validate(request.Models) is { } modelsError)
        {
            errors["models"] = [modelsError];
        }
        return errors;
    }

    internal static Dictionary<string, string[]> Validate(CreateApiKeyRequest request, DateTimeOffset now)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(request.Name))
        {
            errors["name"] = ["A name is required."];
        }
        else if (request.Name.Trim().Length > MaxNameLength)
        {
            errors["name"] = [$"The name must be at most {MaxNameLength} characters."];
        }

        if (request.QuotaUsd is < 0 or > MaxQuotaUsd)
        {
            errors["quota_usd"] = [$"The quota must be between 0 and {MaxQuotaUsd:0} USD (null means unlimited)."];
        }
        if (request.RpmLimit <= 0)
        {
            errors["rpm_limit"] = ["The requests-per-minute limit must be positive (null means unlimited)."];
        }
        if (request.TpmLimit <= 0)
        {
            errors["tpm_limit"] = ["The tokens-per-minute limit must be positive (null means unlimited)."];
        }
        if (request.ExpiresAt <= now)
        {
            errors["expires_at"] = ["The expiry must be in the future."];
        }
        if (request.BudgetDuration is not null && !BudgetDuration.TryParse(request.BudgetDuration, out _))
        {
            errors["budget_duration"] = [$"Must be {BudgetDuration.Syntax} (absent means the quota is for the key's lifetime)."];
        }
        if (ModelList.Validate(request.Models) is { } modelsError)
        {
            errors["models"] = [modelsError];
        }
        return errors;
    }

    /// <summary>The canonical text of a duration (<c>1MO</c> → <c>1mo</c>), null for none.</summary>
    internal static string? NormalizeDuration(string? text) =>
        BudgetDuration.TryParse(text, out var duration) ? duration.Text : null;

    /// <summary><c>sk-tr-</c> + base64url of 32 random bytes (256 bits of entropy).</summary>
    internal static string NewClientKey()
    {
        Span<byte> random = stackalloc byte[KeyRandomBytes];
        RandomNumberGenerator.Fill(random);
        return RedisContract.ClientKeyPrefix + Base64Url.EncodeToString(random);
    }

    private static DateTimeOffset TruncateToMicroseconds(DateTimeOffset value) =>
        new(value.UtcTicks - value.UtcTicks % 10, TimeSpan.Zero);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not seed the quota spend of API key {KeyId} in Redis ({Reason}); a background resync is queued")]
    private static partial void LogSeedDeferred(ILogger logger, Guid keyId, string reason);
}
