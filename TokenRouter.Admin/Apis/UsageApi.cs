using System.Data.Common;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Apis;

/// <summary>
/// Usage and savings reports over the ledger: <c>GET /admin/usage</c> (grouped) and <c>GET /admin/api-keys/{id}/usage</c>
/// (one key against its quota). Everything is summed by Postgres (GROUP BY with a grand-total grouping set).
/// </summary>
public static class UsageApi
{
    /// <summary>group_by values and the SQL expression each groups on (a fixed list: never user text in SQL).</summary>
    private static readonly Dictionary<string, string> Groupings = new(StringComparer.OrdinalIgnoreCase)
    {
        ["key"] = "u.api_key_id::text",
        ["model"] = "u.model",
        ["provider"] = "u.provider",
        ["day"] = "to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        // The team the key belongs to now (null: keys without a team, and configuration keys).
        ["team"] = "t.name",
        // A request counts once under each of its tags (null: untagged), so the tag rows may add up to more than the
        // totals, which count every request once.
        ["tag"] = "tag.name",
        ["user"] = "u.end_user",
    };

    public static RouteGroupBuilder MapUsageApi(this RouteGroupBuilder admin)
    {
        admin.MapGet("/usage", GetReportAsync).WithTags("Usage").WithName("GetUsageReport")
            .WithSummary("Requests, tokens by kind, cost and savings, grouped by key, model, provider, UTC day, team, tag or end user.")
            .WithDescription("group_by: key | model | provider | day | team | tag | user (default model; team: the keys' current " +
                             "team by name, null for keys without one; tag: a request counts under each of its tags, null when " +
                             "untagged; user: the end user the client named). from (inclusive) and to (exclusive) " +
                             "are ISO 8601 times; key_id restricts to one key, tag to requests carrying that tag. Rows are ordered " +
                             "by cost (day: by date); totals count every request once. Unpriced requests count no cost and are " +
                             "counted separately.");
        admin.MapGet("/api-keys/{id:guid}/usage", GetKeyUsageAsync).WithTags("Usage").WithName("GetApiKeyUsage")
            .WithSummary("A key's usage in a window (all time by default) and its all-time spend against its quota.");
        return admin;
    }

    internal static async Task<Results<Ok<UsageReport>, ValidationProblem>> GetReportAsync(
        AdminDbContext db,
        [FromQuery(Name = "group_by")] string? groupBy,
        [FromQuery(Name = "from")] DateTimeOffset? from,
        [FromQuery(Name = "to")] DateTimeOffset? to,
        [FromQuery(Name = "key_id")] Guid? keyId,
        [FromQuery(Name = "tag")] string? tag,
        CancellationToken cancellationToken)
    {
        groupBy = string.IsNullOrWhiteSpace(groupBy) ? "model" : groupBy.Trim().ToLowerInvariant();
        var errors = ValidateWindow(from, to);
        if (!Groupings.ContainsKey(groupBy))
        {
            errors["group_by"] = [$"Must be one of: {string.Join(", ", Groupings.Keys)}."];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The usage query is not valid.");
        }

        return TypedResults.Ok(await BuildReportAsync(db, groupBy, from, to, keyId, cancellationToken,
            string.IsNullOrWhiteSpace(tag) ? null : tag.Trim()));
    }

    /// <summary>
    /// The report behind <c>GET /admin/usage</c> for an already validated query (<paramref name="groupBy"/> one of
    /// key, model, provider, day; <paramref name="from"/> before <paramref name="to"/>). The web console reads the
    /// same reports through it.
    /// </summary>
    internal static async Task<UsageReport> BuildReportAsync(
        AdminDbContext db, string groupBy, DateTimeOffset? from, DateTimeOffset? to, Guid? keyId,
        CancellationToken cancellationToken, string? tag = null)
    {
        var query = new UsageQuery(from, to, keyId, tag);
        var rows = await QueryAsync(db, Groupings[groupBy], includeKeyName: groupBy == "key", query, cancellationToken,
            joinTeams: groupBy == "team", unnestTags: groupBy == "tag");
        // Tag rows repeat multi-tag requests: the totals come from a grouping that counts each request once.
        var totals = groupBy == "tag"
            ? (await QueryAsync(db, Groupings["provider"], includeKeyName: false, query, cancellationToken)).Single(r => r.IsTotal)
            : rows.Single(r => r.IsTotal);
        var groups = rows.Where(r => !r.IsTotal);
        groups = groupBy == "day"
            ? groups.OrderBy(r => r.Group, StringComparer.Ordinal)
            : groups.OrderByDescending(r => r.CostUsd).ThenByDescending(r => r.Requests).ThenBy(r => r.Group, StringComparer.Ordinal);
        return new UsageReport(groupBy, from, to, keyId,
            groups.Select(r => r.ToRow()).ToArray(), totals.ToRow() with { Group = null, KeyName = null });
    }

    internal static async Task<Results<Ok<ApiKeyUsageResponse>, NotFound, ValidationProblem>> GetKeyUsageAsync(
        Guid id,
        AdminDbContext db,
        IConnectionMultiplexer redis,
        [FromQuery(Name = "from")] DateTimeOffset? from,
        [FromQuery(Name = "to")] DateTimeOffset? to,
        CancellationToken cancellationToken)
    {
        var errors = ValidateWindow(from, to);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The usage query is not valid.");
        }

        var key = await db.ApiKeys.AsNoTracking().SingleOrDefaultAsync(k => k.Id == id, cancellationToken);
        if (key is null)
        {
            return TypedResults.NotFound();
        }

        // The quota is a lifetime budget, so spend is all-time whatever window the report shows.
        var spent = (await db.UsageRecords.Where(u => u.ApiKeyId == id).SumAsync(u => u.CostUsd, cancellationToken) ?? 0m).Trimmed();
        var window = (await QueryAsync(db, "u.api_key_id::text", includeKeyName: false, new UsageQuery(from, to, id, null), cancellationToken))
            .Single(r => r.IsTotal).ToRow() with
        { Group = id.ToString("D"), KeyName = key.Name };
        var (gatewaySpent, gatewayReserved) = await ReadGatewayQuotaAsync(redis, id);
        var quota = key.QuotaUsd.Trimmed();
        return TypedResults.Ok(new ApiKeyUsageResponse(
            key.Id, key.Name, quota, spent, quota is { } q ? Math.Max(0m, q - spent) : null,
            gatewaySpent, gatewayReserved, from, to, window));
    }

    private static Dictionary<string, string[]> ValidateWindow(DateTimeOffset? from, DateTimeOffset? to)
    {
        var errors = new Dictionary<string, string[]>();
        if (from is { } f && to is { } t && f >= t)
        {
            errors["to"] = ["'to' must be later than 'from'."];
        }
        return errors;
    }

    private static async Task<List<UsageAggregate>> QueryAsync(
        AdminDbContext db, string groupExpression, bool includeKeyName, UsageQuery query,
        CancellationToken cancellationToken, bool joinTeams = false, bool unnestTags = false)
    {
        var (from, to, keyId, tag) = query;
        var filters = new List<string>();
        var parameters = new List<DbParameter>();
        if (tag is not null)
        {
            filters.Add("@tag = ANY(string_to_array(u.tags, ','))");
            parameters.Add(new NpgsqlParameter("tag", NpgsqlDbType.Text) { Value = tag });
        }
        if (from is { } f)
        {
            filters.Add("u.created_at >= @from");
            parameters.Add(new NpgsqlParameter("from", NpgsqlDbType.TimestampTz) { Value = f.UtcDateTime });
        }
        if (to is { } t)
        {
            filters.Add("u.created_at < @to");
            parameters.Add(new NpgsqlParameter("to", NpgsqlDbType.TimestampTz) { Value = t.UtcDateTime });
        }
        if (keyId is { } k)
        {
            filters.Add("u.api_key_id = @key_id");
            parameters.Add(new NpgsqlParameter("key_id", NpgsqlDbType.Uuid) { Value = k });
        }

        // GROUPING SETS ((g), ()): the groups and the grand total in one pass; the total row exists even with no usage.
        var sql = $"""
            SELECT {groupExpression} AS "Group",
                   {(includeKeyName ? "MAX(k.name)" : "NULL::text")} AS "KeyName",
                   GROUPING({groupExpression}) = 1 AS "IsTotal",
                   COUNT(*) AS "Requests",
                   COALESCE(SUM(u.prompt_tokens), 0)::bigint AS "PromptTokens",
                   COALESCE(SUM(u.cached_read_tokens), 0)::bigint AS "CachedReadTokens",
                   COALESCE(SUM(u.cache_write5m_tokens), 0)::bigint AS "CacheWrite5mTokens",
                   COALESCE(SUM(u.cache_write1h_tokens), 0)::bigint AS "CacheWrite1hTokens",
                   COALESCE(SUM(u.completion_tokens), 0)::bigint AS "CompletionTokens",
                   COALESCE(SUM(u.cost_usd), 0) AS "CostUsd",
                   COALESCE(SUM(u.cache_savings_usd), 0) AS "CacheSavingsUsd",
                   COALESCE(SUM(u.dedup_savings_usd), 0) AS "DedupSavingsUsd",
                   COUNT(*) FILTER (WHERE u.deduplicated) AS "DeduplicatedRequests",
                   COUNT(*) FILTER (WHERE u.unpriced) AS "UnpricedRequests",
                   COUNT(*) FILTER (WHERE u.estimated) AS "EstimatedRequests"
            FROM usage_records u
            {(includeKeyName || joinTeams ? "LEFT JOIN api_keys k ON k.id = u.api_key_id" : "")}
            {(joinTeams ? "LEFT JOIN teams t ON t.id = k.team_id" : "")}
            {(unnestTags ? "LEFT JOIN LATERAL unnest(string_to_array(u.tags, ',')) AS tag(name) ON true" : "")}
            {(filters.Count > 0 ? "WHERE " + string.Join(" AND ", filters) : "")}
            GROUP BY GROUPING SETS (({groupExpression}), ())
            """;
        return await db.Database.SqlQueryRaw<UsageAggregate>(sql, [.. parameters]).ToListAsync(cancellationToken);
    }

    /// <summary>The gateways' own view of the key's quota; null when Redis has none or cannot be reached.</summary>
    private static async Task<(decimal? Spent, decimal? Reserved)> ReadGatewayQuotaAsync(IConnectionMultiplexer redis, Guid keyId)
    {
        if (!redis.IsConnected)
        {
            return (null, null);
        }
        try
        {
            var values = await redis.GetDatabase().HashGetAsync(RedisContract.QuotaKey(keyId.ToString("D")),
                [RedisContract.QuotaFields.SpentNanoUsd, RedisContract.QuotaFields.ReservedNanoUsd]);
            return (FromNanos(values[0]), FromNanos(values[1]));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return (null, null);
        }

        static decimal? FromNanos(RedisValue value) =>
            !value.IsNull && value.TryParse(out long nanos) ? (nanos / 1_000_000_000m).Trimmed() : null;
    }

    private readonly record struct UsageQuery(DateTimeOffset? From, DateTimeOffset? To, Guid? KeyId, string? Tag);

    /// <summary>One result row of the aggregate query; column aliases match the property names.</summary>
    internal sealed class UsageAggregate
    {
        public string? Group { get; set; }
        public string? KeyName { get; set; }
        public bool IsTotal { get; set; }
        public long Requests { get; set; }
        public long PromptTokens { get; set; }
        public long CachedReadTokens { get; set; }
        public long CacheWrite5mTokens { get; set; }
        public long CacheWrite1hTokens { get; set; }
        public long CompletionTokens { get; set; }
        public decimal CostUsd { get; set; }
        public decimal CacheSavingsUsd { get; set; }
        public decimal DedupSavingsUsd { get; set; }
        public long DeduplicatedRequests { get; set; }
        public long UnpricedRequests { get; set; }
        public long EstimatedRequests { get; set; }

        public UsageRow ToRow() => new(
            Group, KeyName, Requests, PromptTokens, CachedReadTokens, CacheWrite5mTokens, CacheWrite1hTokens,
            CompletionTokens, CostUsd.Trimmed(), CacheSavingsUsd.Trimmed(), DedupSavingsUsd.Trimmed(),
            DeduplicatedRequests, UnpricedRequests, EstimatedRequests,
            PromptTokens == 0 ? 0d : (double)CachedReadTokens / PromptTokens);
    }
}
