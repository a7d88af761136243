using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.KeySync;

namespace TokenRouter.Admin.Pricing;

/// <summary>
/// Brings the Redis price overrides in line with <c>model_prices</c>. Endpoints call <see cref="PublishAsync"/> /
/// <see cref="RemoveAsync"/> after each write; start-up and reconnects call <see cref="ReconcileAllAsync"/>. When Redis
/// is unreachable a full price resync is queued for <see cref="KeySyncWorker"/>: Postgres stays the truth.
/// </summary>
public sealed partial class PricePublisher(
    PriceRedisWriter writer,
    KeySyncQueue queue,
    AdminDbContext db,
    ILogger<PricePublisher> logger)
{
    public Task PublishAsync(ModelPrice price) => TryAsync(price.Model, () => writer.SetAsync(price));

    public Task RemoveAsync(string model) => TryAsync(model, () => writer.RemoveAsync(model));

    /// <summary>Rewrites the whole override table from Postgres. Throws on Redis trouble (callers queue or retry).</summary>
    public async Task<int> ReconcileAllAsync(CancellationToken cancellationToken)
    {
        var prices = await db.ModelPrices.AsNoTracking().ToListAsync(cancellationToken);
        return await writer.ReconcileAsync(prices);
    }

    private async Task TryAsync(string model, Func<Task> write)
    {
        if (!writer.IsConnected)
        {
            LogQueued(logger, model, "Redis is not connected");
            queue.EnqueueResync(RedisResync.Prices);
            return;
        }

        try
        {
            await write();
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogQueued(logger, model, e.Message);
            queue.EnqueueResync(RedisResync.Prices);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not write the price of {Model} to Redis ({Reason}); the database has it and a background resync is queued")]
    private static partial void LogQueued(ILogger logger, string model, string reason);
}
