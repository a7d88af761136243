using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Ledger;

/// <summary>What one batch did to the ledger.</summary>
public readonly record struct LedgerWriteResult(int Inserted, int Duplicates, IReadOnlyList<UsageDeadLetter> DeadLetters);

/// <summary>
/// Stores a batch of usage rows and parked entries in one transaction. Rows are inserted with
/// <c>ON CONFLICT (request_id) DO NOTHING</c>, so replaying entries (re-delivery after a crash, a recreated consumer
/// group) never duplicates a request.
/// </summary>
public sealed partial class UsageLedgerWriter(AdminDbContext db, ILogger<UsageLedgerWriter> logger)
{
    // One statement per batch: the columns travel as arrays and unnest() zips them back into rows.
    private const string InsertRowsSql = """
        INSERT INTO usage_records (request_id, api_key_id, model, provider, prompt_tokens, cached_read_tokens,
            cache_write5m_tokens, cache_write1h_tokens, completion_tokens, cost_usd, cache_savings_usd, dedup_savings_usd,
            unpriced, deduplicated, stream, estimated, status, latency_ms, created_at, tags, end_user)
        SELECT * FROM unnest(@request_id, @api_key_id, @model, @provider, @prompt_tokens, @cached_read_tokens,
            @cache_write5m_tokens, @cache_write1h_tokens, @completion_tokens, @cost_usd, @cache_savings_usd,
            @dedup_savings_usd, @unpriced, @deduplicated, @stream, @estimated, @status, @latency_ms, @created_at, @tags, @end_user)
        ON CONFLICT (request_id) DO NOTHING
        """;

    private const string InsertDeadLettersSql = """
        INSERT INTO usage_dead_letters (stream_id, request_id, reason, fields, received_at)
        SELECT * FROM unnest(@stream_id, @request_id, @reason, @fields, @received_at)
        ON CONFLICT (stream_id) DO NOTHING
        """;

    /// <summary>
    /// Writes the batch. When Postgres rejects the data itself (not the connection), the rows are retried one by one
    /// and those it still rejects are parked too, so one bad entry cannot hold up the stream. Infrastructure failures
    /// propagate: nothing is acknowledged and the consumer retries the batch.
    /// </summary>
    public async Task<LedgerWriteResult> WriteAsync(
        IReadOnlyList<UsageRecord> rows, IReadOnlyList<UsageDeadLetter> deadLetters, IReadOnlyList<string> rowStreamIds,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            var stored = await WriteOnceAsync(rows, deadLetters, cancellationToken);
            return new LedgerWriteResult(stored, rows.Count - stored, deadLetters);
        }
        catch (PostgresException e) when (IsDataRejection(e))
        {
            LogIsolating(logger, rows.Count, e.SqlState);
        }

        var inserted = 0;
        var parked = new List<UsageDeadLetter>(deadLetters);
        for (var i = 0; i < rows.Count; i++)
        {
            try
            {
                inserted += await WriteOnceAsync([rows[i]], [], cancellationToken);
            }
            catch (PostgresException e) when (IsDataRejection(e))
            {
                parked.Add(UsageEntryParser.DeadLetter(rowStreamIds[i], rows[i].RequestId,
                    $"Postgres rejected the row ({e.SqlState}): {e.MessageText}", JsonSerializer.Serialize(rows[i]), now));
            }
        }
        try
        {
            await WriteOnceAsync([], parked, cancellationToken);
        }
        catch (PostgresException e) when (IsDataRejection(e))
        {
            // Last resort, so an entry can never block the stream: park without the raw fields.
            LogFieldsDropped(logger, parked.Count, e.SqlState);
            parked = parked.ConvertAll(d => UsageEntryParser.DeadLetter(d.StreamId, null, d.Reason, "{}", d.ReceivedAt));
            await WriteOnceAsync([], parked, cancellationToken);
        }
        var rejected = parked.Count - deadLetters.Count;
        return new LedgerWriteResult(inserted, rows.Count - rejected - inserted, parked);
    }

    private async Task<int> WriteOnceAsync(
        IReadOnlyList<UsageRecord> rows, IReadOnlyList<UsageDeadLetter> deadLetters, CancellationToken cancellationToken)
    {
        if (rows.Count == 0 && deadLetters.Count == 0)
        {
            return 0;
        }

        // Aspire enables EF's retrying strategy, which only allows a user transaction inside ExecuteAsync; a retried
        // batch is harmless because both inserts ignore what is already there.
        var strategy = db.Database.CreateExecutionStrategy();
        return await strategy.ExecuteAsync(async ct =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            var inserted = rows.Count == 0 ? 0 : await db.Database.ExecuteSqlRawAsync(InsertRowsSql, RowParameters(rows), ct);
            if (deadLetters.Count > 0)
            {
                await db.Database.ExecuteSqlRawAsync(InsertDeadLettersSql, DeadLetterParameters(deadLetters), ct);
            }
            await transaction.CommitAsync(ct);
            return inserted;
        }, cancellationToken);
    }

    /// <summary>Class 22 (data exception) and 23 (integrity) other than the unique violation ON CONFLICT absorbs.</summary>
    private static bool IsDataRejection(PostgresException e) =>
        e.SqlState.StartsWith("22", StringComparison.Ordinal) || e.SqlState.StartsWith("23", StringComparison.Ordinal);

    private static NpgsqlParameter[] RowParameters(IReadOnlyList<UsageRecord> rows) =>
    [
        Array("request_id", NpgsqlDbType.Text, rows.Select(r => r.RequestId)),
        Array("api_key_id", NpgsqlDbType.Uuid, rows.Select(r => r.ApiKeyId)),
        Array("model", NpgsqlDbType.Text, rows.Select(r => r.Model)),
        Array("provider", NpgsqlDbType.Text, rows.Select(r => r.Provider)),
        Array("prompt_tokens", NpgsqlDbType.Integer, rows.Select(r => r.PromptTokens)),
        Array("cached_read_tokens", NpgsqlDbType.Integer, rows.Select(r => r.CachedReadTokens)),
        Array("cache_write5m_tokens", NpgsqlDbType.Integer, rows.Select(r => r.CacheWrite5mTokens)),
        Array("cache_write1h_tokens", NpgsqlDbType.Integer, rows.Select(r => r.CacheWrite1hTokens)),
        Array("completion_tokens", NpgsqlDbType.Integer, rows.Select(r => r.CompletionTokens)),
        Array("cost_usd", NpgsqlDbType.Numeric, rows.Select(r => r.CostUsd)),
        Array("cache_savings_usd", NpgsqlDbType.Numeric, rows.Select(r => r.CacheSavingsUsd)),
        Array("dedup_savings_usd", NpgsqlDbType.Numeric, rows.Select(r => r.DedupSavingsUsd)),
        Array("unpriced", NpgsqlDbType.Boolean, rows.Select(r => r.Unpriced)),
        Array("deduplicated", NpgsqlDbType.Boolean, rows.Select(r => r.Deduplicated)),
        Array("stream", NpgsqlDbType.Boolean, rows.Select(r => r.Stream)),
        Array("estimated", NpgsqlDbType.Boolean, rows.Select(r => r.Estimated)),
        Array("status", NpgsqlDbType.Integer, rows.Select(r => r.Status)),
        Array("latency_ms", NpgsqlDbType.Integer, rows.Select(r => r.LatencyMs)),
        Array("created_at", NpgsqlDbType.TimestampTz, rows.Select(r => r.CreatedAt.UtcDateTime)),
        Array("tags", NpgsqlDbType.Text, rows.Select(r => r.Tags)),
        Array("end_user", NpgsqlDbType.Text, rows.Select(r => r.EndUser)),
    ];

    private static NpgsqlParameter[] DeadLetterParameters(IReadOnlyList<UsageDeadLetter> deadLetters) =>
    [
        Array("stream_id", NpgsqlDbType.Text, deadLetters.Select(d => d.StreamId)),
        Array("request_id", NpgsqlDbType.Text, deadLetters.Select(d => d.RequestId)),
        Array("reason", NpgsqlDbType.Text, deadLetters.Select(d => d.Reason)),
        Array("fields", NpgsqlDbType.Jsonb, deadLetters.Select(d => d.Fields)),
        Array("received_at", NpgsqlDbType.TimestampTz, deadLetters.Select(d => d.ReceivedAt.UtcDateTime)),
    ];

    private static NpgsqlParameter Array<T>(string name, NpgsqlDbType type, IEnumerable<T> values) =>
        new(name, NpgsqlDbType.Array | type) { Value = values.ToArray() };

    [LoggerMessage(Level = LogLevel.Error,
        Message = "Postgres rejected {Count} dead letters ({SqlState}); parking them without their raw fields")]
    private static partial void LogFieldsDropped(ILogger logger, int count, string sqlState);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Postgres rejected a usage batch of {Count} rows ({SqlState}); storing them one by one to park the bad ones")]
    private static partial void LogIsolating(ILogger logger, int count, string sqlState);
}
