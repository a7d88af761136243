using System.Buffers.Text;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.KeySync;
using TokenRouter.Admin.Contracts;

namespace TokenRouter.Admin.Apis;

/// <summary><c>/admin/api-keys</c>: create (the key is shown once), list, get and revoke client keys.</summary>
public static class ApiKeysApi
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
        };

        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(cancellationToken);
        await publisher.PublishAsync(key);

        var response = new CreatedApiKeyResponse(
            key.Id, key.Name, secret, key.KeyPrefix, key.QuotaUsd, key.RequestsPerMinute, key.TokensPerMinute,
            key.Enabled, key.CreatedAt, key.ExpiresAt);
        return TypedResults.Created($"/admin/api-keys/{key.Id}", response);
    }

    internal static async Task<Ok<ApiKeyResponse[]>> ListAsync(AdminDbContext db, CancellationToken cancellationToken)
    {
        var keys = await db.ApiKeys.AsNoTracking().OrderBy(k => k.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(keys.Select(ApiKeyResponse.From).ToArray());
    }

    internal static async Task<Results<Ok<ApiKeyResponse>, NotFound>> GetAsync(
        Guid id, AdminDbContext db, CancellationToken cancellationToken)
    {
        var key = await db.ApiKeys.AsNoTracking().SingleOrDefaultAsync(k => k.Id == id, cancellationToken);
        return key is null ? TypedResults.NotFound() : TypedResults.Ok(ApiKeyResponse.From(key));
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
        return errors;
    }

    /// <summary><c>sk-tr-</c> + base64url of 32 random bytes (256 bits of entropy).</summary>
    internal static string NewClientKey()
    {
        Span<byte> random = stackalloc byte[KeyRandomBytes];
        RandomNumberGenerator.Fill(random);
        return RedisContract.ClientKeyPrefix + Base64Url.EncodeToString(random);
    }

    private static DateTimeOffset TruncateToMicroseconds(DateTimeOffset value) =>
        new(value.UtcTicks - value.UtcTicks % 10, TimeSpan.Zero);
}
