using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.Providers;
using TokenRouter.Contracts;
using JsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace TokenRouter.Admin.Apis;

/// <summary>
/// <c>/admin/providers/{provider}/deployments</c>: keys and base URLs of openai, deepseek and anthropic added, changed,
/// rotated and removed at run time. Stored in Postgres with the key encrypted (<see cref="ProviderKeyProtector"/>),
/// published to Redis after every change; running gateways pick a change up on the next request after the notification.
/// </summary>
public static class ProviderDeploymentsApi
{
    public const int MaxKeyLength = 1000;
    private static readonly string[] UpdatableFields = ["enabled", "weight", "rpm_limit", "tpm_limit", "base_url", "cache_group", "max_concurrency"];

    public static RouteGroupBuilder MapProviderDeploymentsApi(this RouteGroupBuilder admin)
    {
        var deployments = admin.MapGroup("/providers/{provider}/deployments").WithTags("Provider deployments");
        deployments.MapPost("", CreateAsync).WithName("CreateProviderDeployment")
            .WithSummary("Adds a deployment (a key and optionally a base URL) to a provider; gateways use it without a restart.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        deployments.MapGet("", ListAsync).WithName("ListProviderDeployments")
            .WithSummary("Lists a provider's Admin-managed deployments (keys shown as a hint only).")
            .ProducesProblem(StatusCodes.Status404NotFound);
        deployments.MapGet("/{id:guid}", GetAsync).WithName("GetProviderDeployment").WithSummary("One deployment (key shown as a hint only).");
        deployments.MapPatch("/{id:guid}", UpdateAsync).WithName("UpdateProviderDeployment")
            .WithSummary("Enables or disables a deployment, or changes its weight, limits (max_concurrency included), base URL or cache group.")
            .Accepts<UpdateProviderDeploymentRequest>("application/json")
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        deployments.MapPost("/{id:guid}/rotate", RotateAsync).WithName("RotateProviderDeploymentKey")
            .WithSummary("Replaces a deployment's key; the next request through any gateway uses the new one.");
        deployments.MapDelete("/{id:guid}", DeleteAsync).WithName("DeleteProviderDeployment")
            .WithSummary("Removes a deployment; gateways stop sending to it.");
        return admin;
    }

    internal static async Task<Results<Created<ProviderDeploymentResponse>, ValidationProblem, ProblemHttpResult>> CreateAsync(
        string provider, CreateProviderDeploymentRequest request, AdminDbContext db, ProviderKeyProtector protector,
        ProviderDeploymentPublisher publisher, TimeProvider time, CancellationToken cancellationToken)
    {
        if (Provider(provider) is not { } name) return UnknownProvider(provider);
        var errors = new Dictionary<string, string[]>();
        ValidateKey(request.ApiKey, errors);
        var present = new HashSet<string>(["weight", "rpm_limit", "tpm_limit", "base_url", "cache_group", "max_concurrency"], StringComparer.Ordinal);
        Validate(new UpdateProviderDeploymentRequest(null, request.Weight ?? 1, request.RpmLimit, request.TpmLimit, request.BaseUrl,
            request.CacheGroup, request.MaxConcurrency), present, errors);
        if (request.Name is { } n && !IsValidName(n.Trim()))
        {
            errors["name"] = ["The name must be 1-64 letters, digits, '-', '_' or '.'."];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The deployment request is not valid.");
        }

        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        var deploymentName = string.IsNullOrWhiteSpace(request.Name) ? id.ToString("N")[^8..] : request.Name.Trim();
        if (await db.ProviderDeployments.AnyAsync(d => d.Provider == name && d.Name == deploymentName, cancellationToken))
        {
            return NameTaken(name, deploymentName);
        }
        var key = request.ApiKey!.Trim();
        var record = new ProviderDeploymentRecord
        {
            Id = id,
            Provider = name,
            Name = deploymentName,
            BaseUrl = NormalizeUrl(request.BaseUrl),
            ProtectedKey = protector.Protect(key),
            KeyHint = ProviderKeyProtector.Hint(key),
            Weight = request.Weight ?? 1,
            RequestsPerMinute = request.RpmLimit,
            TokensPerMinute = request.TpmLimit,
            MaxConcurrency = request.MaxConcurrency,
            CacheGroup = Normalize(request.CacheGroup),
            CreatedAt = Truncate(now),
            UpdatedAt = Truncate(now),
        };
        db.ProviderDeployments.Add(record);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException)
        {
            return NameTaken(name, deploymentName); // a concurrent create won the unique name
        }
        await publisher.PublishAllAsync(db, cancellationToken);
        return TypedResults.Created($"/admin/providers/{name}/deployments/{record.Id}", ProviderDeploymentResponse.From(record));
    }

    internal static async Task<Results<Ok<ProviderDeploymentResponse[]>, ProblemHttpResult>> ListAsync(
        string provider, AdminDbContext db, CancellationToken cancellationToken)
    {
        if (Provider(provider) is not { } name) return UnknownProvider(provider);
        var records = await db.ProviderDeployments.AsNoTracking().Where(d => d.Provider == name).OrderBy(d => d.CreatedAt)
            .ToListAsync(cancellationToken);
        return TypedResults.Ok(records.Select(ProviderDeploymentResponse.From).ToArray());
    }

    internal static async Task<Results<Ok<ProviderDeploymentResponse>, NotFound>> GetAsync(
        string provider, Guid id, AdminDbContext db, CancellationToken cancellationToken)
    {
        var record = await FindAsync(db.ProviderDeployments.AsNoTracking(), provider, id, cancellationToken);
        return record is null ? TypedResults.NotFound() : TypedResults.Ok(ProviderDeploymentResponse.From(record));
    }

    internal static async Task<Results<Ok<ProviderDeploymentResponse>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateAsync(
        string provider, Guid id, HttpRequest httpRequest, AdminDbContext db, ProviderDeploymentPublisher publisher, TimeProvider time,
        IOptions<JsonOptions> jsonOptions, CancellationToken cancellationToken)
    {
        var body = await PatchBody<UpdateProviderDeploymentRequest>.ReadAsync(httpRequest, UpdatableFields, "deployment",
            jsonOptions.Value.SerializerOptions, cancellationToken);
        if (body.Problem is { } problem) return problem;
        if (body.Invalid is { } invalid) return invalid;
        var (request, present) = (body.Request!, body.Present);

        var record = await FindAsync(db.ProviderDeployments, provider, id, cancellationToken);
        if (record is null)
        {
            return TypedResults.NotFound();
        }
        var errors = new Dictionary<string, string[]>();
        if (present.Contains("enabled") && request.Enabled is null) errors["enabled"] = ["Must be true or false."];
        if (present.Contains("weight") && request.Weight is null) errors["weight"] = ["Must be a positive number."];
        Validate(request, present, errors);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The deployment update is not valid.");
        }
        if (present.Contains("enabled")) record.Enabled = request.Enabled!.Value;
        if (present.Contains("weight")) record.Weight = request.Weight!.Value;
        if (present.Contains("rpm_limit")) record.RequestsPerMinute = request.RpmLimit;
        if (present.Contains("tpm_limit")) record.TokensPerMinute = request.TpmLimit;
        if (present.Contains("max_concurrency")) record.MaxConcurrency = request.MaxConcurrency;
        if (present.Contains("base_url")) record.BaseUrl = NormalizeUrl(request.BaseUrl);
        if (present.Contains("cache_group")) record.CacheGroup = Normalize(request.CacheGroup);
        record.Version++;
        record.UpdatedAt = Truncate(time.GetUtcNow());
        await db.SaveChangesAsync(cancellationToken);
        await publisher.PublishAllAsync(db, cancellationToken);
        return TypedResults.Ok(ProviderDeploymentResponse.From(record));
    }

    internal static async Task<Results<Ok<ProviderDeploymentResponse>, NotFound, ValidationProblem>> RotateAsync(
        string provider, Guid id, RotateProviderKeyRequest request, AdminDbContext db, ProviderKeyProtector protector,
        ProviderDeploymentPublisher publisher, TimeProvider time, CancellationToken cancellationToken)
    {
        var record = await FindAsync(db.ProviderDeployments, provider, id, cancellationToken);
        if (record is null)
        {
            return TypedResults.NotFound();
        }
        var errors = new Dictionary<string, string[]>();
        ValidateKey(request.ApiKey, errors);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The rotation is not valid.");
        }
        var key = request.ApiKey!.Trim();
        var now = Truncate(time.GetUtcNow());
        record.ProtectedKey = protector.Protect(key);
        record.KeyHint = ProviderKeyProtector.Hint(key);
        record.Version++;
        record.UpdatedAt = now;
        record.KeyRotatedAt = now;
        await db.SaveChangesAsync(cancellationToken);
        await publisher.PublishAllAsync(db, cancellationToken);
        return TypedResults.Ok(ProviderDeploymentResponse.From(record));
    }

    internal static async Task<Results<NoContent, NotFound>> DeleteAsync(
        string provider, Guid id, AdminDbContext db, ProviderDeploymentPublisher publisher, CancellationToken cancellationToken)
    {
        var record = await FindAsync(db.ProviderDeployments, provider, id, cancellationToken);
        if (record is null)
        {
            return TypedResults.NotFound();
        }
        db.ProviderDeployments.Remove(record);
        await db.SaveChangesAsync(cancellationToken);
        await publisher.PublishAllAsync(db, cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<ProviderDeploymentRecord?> FindAsync(IQueryable<ProviderDeploymentRecord> set, string provider, Guid id,
        CancellationToken cancellationToken) =>
        Provider(provider) is { } name ? await set.SingleOrDefaultAsync(d => d.Id == id && d.Provider == name, cancellationToken) : null;

    private static string? Provider(string provider)
    {
        var name = provider.ToLowerInvariant();
        return ProviderDeploymentContract.Providers.Contains(name) ? name : null;
    }

    private static void ValidateKey(string? apiKey, Dictionary<string, string[]> errors)
    {
        var key = apiKey?.Trim();
        if (string.IsNullOrEmpty(key))
        {
            errors["api_key"] = ["A provider key is required."];
        }
        else if (key.Length > MaxKeyLength || key.Any(c => c is < '!' or > '~'))
        {
            // It goes into an HTTP header: printable ASCII only.
            errors["api_key"] = [$"The key must be at most {MaxKeyLength} printable ASCII characters without spaces."];
        }
    }

    private static void Validate(UpdateProviderDeploymentRequest request, IReadOnlySet<string> present, Dictionary<string, string[]> errors)
    {
        if (present.Contains("weight") && request.Weight is { } weight && (!(weight > 0) || double.IsInfinity(weight) || weight > 1_000_000))
        {
            errors["weight"] = ["The weight must be a positive number up to 1000000."];
        }
        if (present.Contains("rpm_limit") && request.RpmLimit <= 0)
        {
            errors["rpm_limit"] = ["The requests-per-minute limit must be positive (null means unlimited)."];
        }
        if (present.Contains("tpm_limit") && request.TpmLimit <= 0)
        {
            errors["tpm_limit"] = ["The tokens-per-minute limit must be positive (null means unlimited)."];
        }
        if (present.Contains("max_concurrency") && request.MaxConcurrency <= 0)
        {
            errors["max_concurrency"] = ["The cap on requests in flight must be positive (null means no cap)."];
        }
        if (present.Contains("base_url") && !string.IsNullOrWhiteSpace(request.BaseUrl)
            && (!Uri.TryCreate(request.BaseUrl.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
                || !string.IsNullOrEmpty(uri.UserInfo) || request.BaseUrl.Length > 2000))
        {
            errors["base_url"] = ["The base URL must be an absolute http(s) URL without credentials (null means the provider's)."];
        }
        if (present.Contains("cache_group") && request.CacheGroup is { } group && !string.IsNullOrWhiteSpace(group) && !IsValidName(group.Trim()))
        {
            errors["cache_group"] = ["The cache group must be 1-64 letters, digits, '-', '_' or '.'."];
        }
    }

    private static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    private static string? Normalize(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static string? NormalizeUrl(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim().TrimEnd('/');

    // Postgres keeps microseconds: what is returned is what a later read returns.
    private static DateTimeOffset Truncate(DateTimeOffset t) => new(t.UtcTicks - t.UtcTicks % 10, TimeSpan.Zero);

    private static ProblemHttpResult UnknownProvider(string provider) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown provider.",
            detail: $"'{provider}' is not a provider whose deployments Admin manages ({string.Join(", ", ProviderDeploymentContract.Providers)}).");

    private static ProblemHttpResult NameTaken(string provider, string name) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "The deployment name is taken.",
            detail: $"Provider '{provider}' already has a deployment named '{name}'.");
}
