using Microsoft.Extensions.Options;
using TokenRouter.Admin.Configuration;

namespace TokenRouter.Admin.KeySync;

/// <summary>
/// Retries, with exponential back-off, the key snapshots that could not reach Redis when they were written.
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
                var (full, ids) = queue.TakeAll();
                var failure = await TrySyncAsync(full, ids, stoppingToken);
                if (failure is null)
                {
                    delay = options.Value.RetryDelay;
                    continue;
                }

                queue.Requeue(full, ids);
                LogRetrying(logger, full, ids.Count, delay, failure);
                await Task.Delay(delay, time, stoppingToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.Value.MaxRetryDelay.Ticks));
            }
        }
    }

    /// <summary>Returns null on success, else why it failed.</summary>
    private async Task<string?> TrySyncAsync(bool full, IReadOnlyList<Guid> ids, CancellationToken stoppingToken)
    {
        if (!writer.IsConnected)
        {
            return "Redis is not connected"; // don't wait out the client's backlog timeout
        }

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var publisher = scope.ServiceProvider.GetRequiredService<KeyPublisher>();
            if (full)
            {
                LogResynced(logger, await publisher.ReconcileAllAsync(stoppingToken));
            }
            if (ids.Count > 0)
            {
                await publisher.SyncByIdAsync(ids, stoppingToken);
                LogSynced(logger, ids.Count);
            }
            return null;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Redis or Postgres trouble alike: keep the work queued; a crashed BackgroundService would stop the host.
            return e.Message;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Redis still unreachable for key sync (full resync: {Full}, keys: {Count}); retrying in {Delay}: {Reason}")]
    private static partial void LogRetrying(ILogger logger, bool full, int count, TimeSpan delay, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis is back: republished {Count} active API keys")]
    private static partial void LogResynced(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis is back: synced {Count} queued API keys")]
    private static partial void LogSynced(ILogger logger, int count);
}
