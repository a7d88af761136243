using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.KeySync;
using TokenRouter.Admin.Pricing;
using TokenRouter.Admin.Quotas;

namespace TokenRouter.Admin.Hosting;

/// <summary>
/// Runs before the server accepts requests (hosted services start before Kestrel): migrate the schema, then bring
/// Redis in line with Postgres so a flushed Redis heals: republish every active key and the price overrides, and seed
/// the quota spend Redis lost from the ledger. A Redis outage here does not stop Admin: what could not be written is
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
        var services = scope.ServiceProvider;
        await services.GetRequiredService<DatabaseMigrator>().MigrateAsync(cancellationToken);

        if (!services.GetRequiredService<ApiKeyRedisWriter>().IsConnected)
        {
            LogResyncDeferred(logger, RedisResync.All.ToString(), "Redis is not connected");
            queue.EnqueueResync(RedisResync.All);
            return;
        }

        // Keys before spend: a gateway must know a key's quota before the spend against it matters.
        await TryAsync(RedisResync.Keys, async () =>
            LogPublished(logger, await services.GetRequiredService<KeyPublisher>().ReconcileAllAsync(cancellationToken)));
        await TryAsync(RedisResync.Prices, async () =>
            LogPricesPublished(logger, await services.GetRequiredService<PricePublisher>().ReconcileAllAsync(cancellationToken)));
        await TryAsync(RedisResync.QuotaSpend, async () =>
            LogSpendSeeded(logger, await services.GetRequiredService<QuotaSpendSeeder>().SeedAllAsync(cancellationToken)));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task TryAsync(RedisResync what, Func<Task> sync)
    {
        try
        {
            await sync();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogResyncDeferred(logger, what.ToString(), e.Message);
            queue.EnqueueResync(what);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Published {Count} active API keys to Redis")]
    private static partial void LogPublished(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Published {Count} price overrides to Redis")]
    private static partial void LogPricesPublished(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Seeded the quota spend of {Count} keys whose Redis quota hash had none, from the ledger")]
    private static partial void LogSpendSeeded(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not sync {What} to Redis at start-up ({Reason}); retrying in the background")]
    private static partial void LogResyncDeferred(ILogger logger, string what, string reason);
}
