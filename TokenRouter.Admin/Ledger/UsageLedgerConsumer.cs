using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Admin.Alerts;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Ledger;

/// <summary>
/// Drains the gateway's usage stream (<see cref="RedisContract.UsageStream"/>) into the Postgres ledger with the
/// consumer group <see cref="RedisContract.UsageConsumerGroup"/>.
/// </summary>
/// <remarks>
/// <para>Exactly once, end to end: rows are inserted idempotently by request id, and an entry is acknowledged (XACK)
/// only after the transaction holding it committed. A crash between commit and ack leaves the entry pending; at start
/// the consumer first re-reads its own pending entries (XREADGROUP from id 0, by its stable consumer name), and it
/// periodically claims entries other consumers left pending longer than <see cref="UsageLedgerOptions.ClaimIdleTime"/>
/// (XAUTOCLAIM: a replica that died or was renamed). Re-processing them inserts nothing twice.</para>
/// <para>The group is created from id 0 with MKSTREAM, so entries gateways wrote before Admin's first start are kept,
/// and re-created the same way when Redis lost it (FLUSHALL, restart without persistence).</para>
/// <para>Entries that cannot be read are parked in <c>usage_dead_letters</c> in the same transaction and acknowledged;
/// no failure ends the loop. Acknowledged entries are trimmed from the stream (XTRIM MINID below the oldest pending
/// entry), as the contract makes Admin, not the gateway, responsible for that.</para>
/// </remarks>
public sealed partial class UsageLedgerConsumer(
    IConnectionMultiplexer redis,
    IServiceScopeFactory scopes,
    UsageLedgerStatus status,
    IOptions<UsageLedgerOptions> options,
    TimeProvider time,
    ILogger<UsageLedgerConsumer> logger) : BackgroundService
{
    private static readonly RedisKey Stream = RedisContract.UsageStream;
    private static readonly RedisValue Group = RedisContract.UsageConsumerGroup;
    private const int MaxDeadLettersLogged = 10;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.Enabled)
        {
            LogDisabled(logger);
            return;
        }

        var consumer = (RedisValue)settings.ResolvedConsumerName;
        var groupReady = false;
        var recovering = true; // own pending entries first: left there by a crash between commit and ack
        var claimCursor = "0-0";
        var nextClaim = time.GetUtcNow();
        var nextStatus = time.GetUtcNow();
        var retryDelay = settings.RetryDelay;
        var failing = false;
        LogStarted(logger, consumer.ToString());

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var db = redis.GetDatabase();
                if (!groupReady)
                {
                    await EnsureGroupAsync(db);
                    groupReady = true;
                }

                StreamEntry[] entries;
                if (recovering)
                {
                    entries = await db.StreamReadGroupAsync(Stream, Group, consumer, "0-0", settings.BatchSize);
                    recovering = entries.Length > 0;
                }
                else
                {
                    entries = await db.StreamReadGroupAsync(Stream, Group, consumer, StreamPosition.NewMessages, settings.BatchSize);
                    if (entries.Length == 0 && time.GetUtcNow() >= nextClaim)
                    {
                        // Only when idle: orphans are rare, and new entries should not wait behind a scan.
                        var claim = await db.StreamAutoClaimAsync(Stream, Group, consumer,
                            (long)settings.ClaimIdleTime.TotalMilliseconds, claimCursor, settings.BatchSize);
                        entries = claim.ClaimedEntries ?? [];
                        claimCursor = claim.NextStartId.IsNullOrEmpty ? "0-0" : claim.NextStartId.ToString();
                        if (claimCursor == "0-0")
                        {
                            nextClaim = time.GetUtcNow() + settings.ClaimIdleTime / 2;
                        }
                        if (entries.Length > 0)
                        {
                            LogClaimed(logger, entries.Length);
                        }
                    }
                }

                if (entries.Length > 0)
                {
                    await ProcessAsync(db, entries);
                }
                if (failing)
                {
                    LogRecovered(logger);
                    failing = false;
                }
                retryDelay = settings.RetryDelay;

                if (time.GetUtcNow() >= nextStatus)
                {
                    await status.RefreshAsync(time.GetUtcNow());
                    nextStatus = time.GetUtcNow() + settings.StatusInterval;
                }
                if (entries.Length == 0)
                {
                    await Task.Delay(settings.PollInterval, time, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (RedisServerException e) when (e.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
            {
                // Redis lost the stream or the group (FLUSHALL, restart): re-create it and start over from id 0.
                LogGroupMissing(logger);
                groupReady = false;
                recovering = true;
            }
            catch (Exception e)
            {
                // Redis or Postgres away, or anything else: nothing was acknowledged, so the entries stay pending and
                // are re-read from our pending list once things work again. A dead BackgroundService would stop the host.
                LogFailed(logger, retryDelay, e.GetType().Name, e.Message);
                failing = true;
                recovering = true;
                try
                {
                    await Task.Delay(retryDelay, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, settings.MaxRetryDelay.Ticks));
            }
        }
    }

    private static async Task EnsureGroupAsync(IDatabase db)
    {
        try
        {
            // From id 0, not $: entries written before Admin's first start (or before the group was lost) still count.
            await db.StreamCreateConsumerGroupAsync(Stream, Group, "0-0", createStream: true);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // Already there (another replica, or an earlier run).
        }
    }

    private async Task ProcessAsync(IDatabase db, StreamEntry[] entries)
    {
        var now = time.GetUtcNow();
        var rows = new List<UsageRecord>(entries.Length);
        var rowIds = new List<string>(entries.Length);
        var deadLetters = new List<UsageDeadLetter>();
        var maxId = StreamId.Zero;
        foreach (var entry in entries)
        {
            var parsed = UsageEntryParser.Parse(entry, now);
            if (parsed.Record is { } record)
            {
                rows.Add(record);
                rowIds.Add(entry.Id.ToString());
            }
            else
            {
                deadLetters.Add(parsed.DeadLetter!);
            }
            var id = StreamId.Parse(entry.Id);
            if (id > maxId)
            {
                maxId = id;
            }
        }

        LedgerWriteResult result;
        await using (var scope = scopes.CreateAsyncScope())
        {
            // Not cancelled by shutdown: a batch that started is finished and acknowledged, not left for the next start.
            result = await scope.ServiceProvider.GetRequiredService<UsageLedgerWriter>()
                .WriteAsync(rows, deadLetters, rowIds, now, CancellationToken.None);

            // Budget alerts for the keys (and their teams) this batch charged, before the ack: if detection fails, the
            // batch is re-read, stores nothing twice and detects again; an alert row is unique, so none fires twice.
            var keyIds = rows.Where(r => r.ApiKeyId is not null).Select(r => r.ApiKeyId!.Value).ToHashSet();
            if (keyIds.Count > 0)
            {
                await scope.ServiceProvider.GetRequiredService<BudgetAlertDetector>().DetectAsync(keyIds, CancellationToken.None);
            }
        }

        // Committed: now, and only now, the entries may leave the pending list.
        await db.StreamAcknowledgeAsync(Stream, Group, entries.Select(e => e.Id).ToArray());
        status.RecordBatch(result.Inserted, result.Duplicates, result.DeadLetters.Count);

        foreach (var dead in result.DeadLetters.Take(MaxDeadLettersLogged))
        {
            LogParked(logger, dead.StreamId, dead.Reason);
        }
        if (result.DeadLetters.Count > MaxDeadLettersLogged)
        {
            LogMoreParked(logger, result.DeadLetters.Count - MaxDeadLettersLogged);
        }

        await TrimAsync(db, maxId);
    }

    /// <summary>
    /// Removes acknowledged entries: everything up to this batch was delivered, so what lies below both the batch's
    /// end and the oldest entry still pending (in any consumer) has been acknowledged.
    /// </summary>
    private async Task TrimAsync(IDatabase db, StreamId batchMax)
    {
        try
        {
            var minId = batchMax.Successor();
            var pending = await db.StreamPendingAsync(Stream, Group);
            if (pending.PendingMessageCount > 0 && StreamId.Parse(pending.LowestPendingMessageId) is var lowest && lowest < minId)
            {
                minId = lowest;
            }
            await db.StreamTrimByMinIdAsync(Stream, minId.ToString());
        }
        catch (Exception e) when (e is RedisException or TimeoutException or FormatException)
        {
            // Trimming is housekeeping: the next batch tries again.
            LogTrimFailed(logger, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Usage ledger consumer {Consumer} started")]
    private static partial void LogStarted(ILogger logger, string consumer);

    [LoggerMessage(Level = LogLevel.Information, Message = "Usage ledger consumer is disabled (Admin:Ledger:Enabled=false)")]
    private static partial void LogDisabled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Usage ledger could not process the stream ({Error}: {Reason}); unacknowledged entries stay pending, retrying in {Delay}")]
    private static partial void LogFailed(ILogger logger, TimeSpan delay, string error, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Usage ledger is processing the stream again")]
    private static partial void LogRecovered(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "The usage stream's consumer group is missing (Redis was flushed or restarted); re-creating it from id 0")]
    private static partial void LogGroupMissing(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Claimed {Count} usage entries another consumer left unacknowledged")]
    private static partial void LogClaimed(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Parked usage entry {StreamId} in usage_dead_letters: {Reason}")]
    private static partial void LogParked(ILogger logger, string streamId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Parked {Count} more usage entries in usage_dead_letters")]
    private static partial void LogMoreParked(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not trim the usage stream (the next batch retries): {Reason}")]
    private static partial void LogTrimFailed(ILogger logger, string reason);
}
