using StackExchange.Redis;
using TokenRouter.Admin.KeySync;

namespace TokenRouter.Admin.Hosting;

/// <summary>
/// A Redis that comes back after a lost connection may have restarted empty (no persistence): keys, price overrides and
/// quota spend would be gone until Admin's next start. So every restored connection queues a full resync, which is
/// idempotent (snapshots are rewritten, spend is only seeded where missing) and cheap when nothing was lost.
/// </summary>
public sealed partial class RedisReconnectWatcher(
    IConnectionMultiplexer redis,
    KeySyncQueue queue,
    ILogger<RedisReconnectWatcher> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionRestored += OnConnectionRestored;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionRestored -= OnConnectionRestored;
        return Task.CompletedTask;
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        // The subscription connection is restored separately; one resync per reconnect is enough.
        if (e.ConnectionType == ConnectionType.Interactive)
        {
            LogResync(logger);
            queue.EnqueueResync(RedisResync.All);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis connection restored; resyncing keys, prices and quota spend")]
    private static partial void LogResync(ILogger logger);
}
