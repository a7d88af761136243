using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
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
    private readonly ResiliencePipeline<SyncRound> _retry = CreateRetryPipeline(options.Value, time, logger);

    /// <summary>One pass over the queue: what it left to do (already handed back to the queue) and why, or success.</summary>
    internal readonly record struct SyncRound(RedisResync Left, int Count, string? Failure);

    /// <summary>
    /// Retries a failed round until one succeeds or the worker stops: <see cref="KeySyncOptions.RetryDelay"/> doubling to
    /// <see cref="KeySyncOptions.MaxRetryDelay"/>, jittered, logging each wait.
    /// </summary>
    internal static ResiliencePipeline<SyncRound> CreateRetryPipeline(KeySyncOptions settings, TimeProvider time, ILogger logger) =>
        new ResiliencePipelineBuilder<SyncRound> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<SyncRound>
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result.Failure is not null),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = settings.RetryDelay,
                MaxDelay = settings.MaxRetryDelay,
                OnRetry = args =>
                {
                    var round = args.Outcome.Result;
                    LogRetrying(logger, round.Left.ToString(), round.Count, args.RetryDelay, round.Failure!);
                    return default;
                },
            })
            .Build();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await queue.WaitAsync(stoppingToken);

            while (!queue.IsEmpty && !stoppingToken.IsCancellationRequested)
            {
                await _retry.ExecuteAsync(static (worker, ct) => worker.SyncRoundAsync(ct), this, stoppingToken);
            }
        }
    }

    private async ValueTask<SyncRound> SyncRoundAsync(CancellationToken stoppingToken)
    {
        var (resync, ids) = queue.TakeAll();
        var (left, failure) = await TrySyncAsync(resync, ids, stoppingToken);
        if (failure is not null) queue.Requeue(left, ids);
        return new SyncRound(left, ids.Count, failure);
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
