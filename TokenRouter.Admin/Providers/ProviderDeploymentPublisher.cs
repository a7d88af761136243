using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Providers;

/// <summary>
/// Writes every Admin-managed provider deployment to <see cref="ProviderDeploymentContract.Hash"/> as a whole (Postgres
/// is the truth; the set is small) and announces it on <see cref="ProviderDeploymentContract.ChangedChannel"/>. Called
/// after each change and by <see cref="ProviderDeploymentSyncWorker"/> every resync interval, so a Redis outage or a
/// flushed Redis heals on its own.
/// </summary>
public sealed partial class ProviderDeploymentPublisher(IConnectionMultiplexer redis, ILogger<ProviderDeploymentPublisher> logger)
{
    /// <summary>Gateways know an Admin-managed deployment by this id (metrics, health): unique across providers and
    /// distinct from configured ids.</summary>
    public static string GatewayId(ProviderDeploymentRecord d) => $"admin-{d.Provider}-{d.Name}";

    /// <summary>Publishes the database's deployments; false (logged) when Redis could not be written.</summary>
    public async Task<bool> PublishAllAsync(AdminDbContext db, CancellationToken cancellationToken)
    {
        var records = await db.ProviderDeployments.AsNoTracking().OrderBy(d => d.CreatedAt).ToListAsync(cancellationToken);
        if (!redis.IsConnected)
        {
            LogDeferred(logger, "Redis is not connected");
            return false;
        }
        try
        {
            var transaction = redis.GetDatabase().CreateTransaction();
            _ = transaction.KeyDeleteAsync(ProviderDeploymentContract.Hash);
            if (records.Count > 0)
            {
                _ = transaction.HashSetAsync(ProviderDeploymentContract.Hash,
                    [.. records.Select(r => new HashEntry(GatewayId(r), ToEntry(r).ToJson()))]);
            }
            if (!await transaction.ExecuteAsync())
            {
                throw new RedisException("Redis did not commit the provider deployments.");
            }
            await redis.GetSubscriber().PublishAsync(RedisChannel.Literal(ProviderDeploymentContract.ChangedChannel), records.Count);
            return true;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogDeferred(logger, e.Message);
            return false;
        }
    }

    internal static ProviderDeploymentContract.Entry ToEntry(ProviderDeploymentRecord r) =>
        new(GatewayId(r), r.Provider, r.BaseUrl, r.ProtectedKey, r.Weight, r.CacheGroup, r.RequestsPerMinute, r.TokensPerMinute,
            r.Enabled, r.Version, r.MaxConcurrency);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not publish provider deployments to Redis ({Reason}); the next resync retries")]
    private static partial void LogDeferred(ILogger logger, string reason);
}
