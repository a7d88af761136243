using Microsoft.Extensions.Options;
using TokenRouter.Admin.Configuration;
using TokenRouter.Admin.Pricing;
using TokenRouter.Admin.Quotas;

namespace TokenRouter.Admin.KeySync;

/// <summary>
/// Retries, with exponential back-off, the Redis writes that could not be made when they were due: key snapshots,
/// and whole resyncs of keys, price overrides and quota spend (after start-up or a reconnect).
/// </summary>
public sealed partial class KeySyncWorker(
    KeySyncQueue queue,
    ApiKeyRedisWriter writer,
    IServiceScopeFactory scopes,
    IOptions<KeySyncOptions> options,
    TimeProvider time,
    ILogger<KeySyncWorker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await queue.WaitAsync(stoppingToken);
            var delay = options.Value.RetryDelay;

            while (!queue.IsEmpty && !stoppingToken.IsCancellationRequested)
            {
                var (resync, ids) = queue.TakeAll();
                var (left, failure) = await TrySyncAsync(resync, ids, stoppingToken);
                if (failure is null)
                {
                    delay = options.Value.RetryDelay;
                    continue;
                }

                queue.Requeue(left, ids);
                LogRetrying(logger, left.ToString(), ids.Count, delay, failure);
                await Task.Delay(delay, time, stoppingToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.Value.MaxRetryDelay.Ticks));
            }
        }
    }

    /// <summary>Returns what is still to do and, on failure, why (null on success).</summary>
    private async Task<(RedisResync Left, string? Failure)> TrySyncAsync(
        RedisResync resync, IReadOnlyList<Guid> ids, CancellationToken stoppingToken)
    {
        if (!writer.IsConnected)
        {
            return (resync, "Redis is not connected"); // don't wait out the client's backlog timeout
        }

        var left = resync;
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var services = scope.ServiceProvider;
            if (left.HasFlag(RedisResync.Keys))
            {
                LogResynced(logger, await services.GetRequiredService<KeyPublisher>().ReconcileAllAsync(stoppingToken));
                left &= ~RedisResync.Keys;
            }
            if (left.HasFlag(RedisResync.Prices))
            {
                LogPricesResynced(logger, await services.GetRequiredService<PricePublisher>().ReconcileAllAsync(stoppingToken));
                left &= ~RedisResync.Prices;
            }
            if (left.HasFlag(RedisResync.QuotaSpend))
            {
                LogSpendSeeded(logger, await services.GetRequiredService<QuotaSpendSeeder>().SeedAllAsync(stoppingToken));
                left &= ~RedisResync.QuotaSpend;
            }
            if (ids.Count > 0)
            {
                await services.GetRequiredService<KeyPublisher>().SyncByIdAsync(ids, stoppingToken);
                LogSynced(logger, ids.Count);
            }
            return (RedisResync.None, null);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Redis or Postgres trouble alike: keep the work queued; a crashed BackgroundService would stop the host.
            return (left, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Redis still unreachable for sync (resync: {Resync}, keys: {Count}); retrying in {Delay}: {Reason}")]
    private static partial void LogRetrying(ILogger logger, string resync, int count, TimeSpan delay, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis is back: republished {Count} active API keys")]
    private static partial void LogResynced(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis is back: republished {Count} price overrides")]
    private static partial void LogPricesResynced(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis is back: seeded the quota spend of {Count} keys from the ledger")]
    private static partial void LogSpendSeeded(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis is back: synced {Count} queued API keys")]
    private static partial void LogSynced(ILogger logger, int count);
}
