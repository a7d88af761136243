using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.KeySync;

namespace TokenRouter.Admin.Hosting;

/// <summary>
/// Runs before the server accepts requests (hosted services start before Kestrel): migrate the schema, then
/// republish every active key so a flushed Redis heals. A Redis outage here does not stop Admin: the resync is
/// handed to <see cref="KeySyncWorker"/>.
/// </summary>
public sealed partial class AdminStartupService(
    IServiceScopeFactory scopes,
    KeySyncQueue queue,
    ILogger<AdminStartupService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<DatabaseMigrator>().MigrateAsync(cancellationToken);

        var writer = scope.ServiceProvider.GetRequiredService<ApiKeyRedisWriter>();
        if (!writer.IsConnected)
        {
            LogResyncDeferred(logger, "Redis is not connected");
            queue.EnqueueFullResync();
            return;
        }

        try
        {
            var count = await scope.ServiceProvider.GetRequiredService<KeyPublisher>().ReconcileAllAsync(cancellationToken);
            LogPublished(logger, count);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogResyncDeferred(logger, e.Message);
            queue.EnqueueFullResync();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Published {Count} active API keys to Redis")]
    private static partial void LogPublished(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not republish API keys to Redis at start-up ({Reason}); retrying in the background")]
    private static partial void LogResyncDeferred(ILogger logger, string reason);
}
