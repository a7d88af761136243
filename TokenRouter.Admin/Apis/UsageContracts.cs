using System.Text.Json;
using System.Text.Json.Serialization;

namespace TokenRouter.Admin.Apis;

// Wire shapes of the usage reports. Money in USD, tokens as counts, all sums over the ledger (usage_records).

/// <summary>Sums over a set of requests: one group of a report, or its totals.</summary>
/// <param name="Group">The group's value: key id, model, provider or UTC day (yyyy-MM-dd); null in totals and for keys from configuration.</param>
/// <param name="KeyName">The key's name when grouping by key.</param>
/// <param name="CachedTokenRatio">cached_read_tokens / prompt_tokens (0 when there were no prompt tokens).</param>
public sealed record UsageRow(
    string? Group,
    string? KeyName,
    long Requests,
    long PromptTokens,
    long CachedReadTokens,
    [property: JsonPropertyName("cache_write_5m_tokens")] long CacheWrite5mTokens,
    [property: JsonPropertyName("cache_write_1h_tokens")] long CacheWrite1hTokens,
    long CompletionTokens,
    decimal CostUsd,
    decimal CacheSavingsUsd,
    decimal DedupSavingsUsd,
    long DeduplicatedRequests,
    long UnpricedRequests,
    long EstimatedRequests,
    double CachedTokenRatio);

/// <summary>Response of <c>GET /admin/usage</c>.</summary>
public sealed record UsageReport(
    string GroupBy,
    DateTimeOffset? From,
    DateTimeOffset? To,
    Guid? KeyId,
    UsageRow[] Rows,
    UsageRow Totals);

/// <summary>Response of <c>GET /admin/api-keys/{id}/usage</c>.</summary>
/// <param name="SpentUsd">All-time spend in the ledger (what the quota is measured against).</param>
/// <param name="RemainingUsd">Quota minus spend, never below 0; null without a quota.</param>
/// <param name="GatewaySpentUsd">The gateways' live spend in Redis (ahead of the ledger by what is still in the stream); null when unknown.</param>
/// <param name="GatewayReservedUsd">Worst-case cost of the key's requests in flight, from Redis; null when unknown.</param>
/// <param name="Usage">Sums over the requested window (all time without from/to).</param>
public sealed record ApiKeyUsageResponse(
    Guid KeyId,
    string Name,
    decimal? QuotaUsd,
    decimal SpentUsd,
    decimal? RemainingUsd,
    decimal? GatewaySpentUsd,
    decimal? GatewayReservedUsd,
    DateTimeOffset? From,
    DateTimeOffset? To,
    UsageRow Usage);

/// <summary>Response of <c>GET /admin/ledger</c>.</summary>
/// <param name="Undelivered">Entries not yet delivered to the consumer group.</param>
/// <param name="Pending">Entries delivered but not yet acknowledged (being stored, or left by a consumer that stopped).</param>
/// <param name="Backlog">Undelivered + pending: what the ledger does not hold yet.</param>
public sealed record LedgerStatusResponse(
    bool Enabled,
    string Stream,
    string Group,
    string Consumer,
    long? StreamLength,
    long? Undelivered,
    long? Pending,
    long? Backlog,
    DateTimeOffset? ObservedAt,
    long StoredSinceStart,
    long DuplicatesSinceStart,
    long DeadLetteredSinceStart,
    long DeadLettersTotal);

/// <summary>A parked usage entry (<c>GET /admin/ledger/dead-letters</c>).</summary>
public sealed record DeadLetterResponse(
    string StreamId,
    string? RequestId,
    string Reason,
    JsonElement Fields,
    DateTimeOffset ReceivedAt);
