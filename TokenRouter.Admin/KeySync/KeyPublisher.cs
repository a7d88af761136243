using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.KeySync;

/// <summary>
/// Brings Redis in line with Postgres. Endpoints call <see cref="PublishAsync"/> after each write; start-up calls
/// <see cref="ReconcileAllAsync"/> so a flushed or stale Redis heals. When Redis is unreachable the change is
/// queued and <see cref="KeySyncWorker"/> retries it in the background (and the next start-up reconciles
/// everything anyway, so nothing is lost if the process stops first).
/// </summary>
public sealed partial class KeyPublisher(
    ApiKeyRedisWriter writer,
    KeySyncQueue queue,
    AdminDbContext db,
    TimeProvider time,
    ILogger<KeyPublisher> logger)
{
    private const int ReconcileBatchSize = 256;

    // Margin for clocks of other Admin replicas when looking for revocations that raced a bulk write.
    private static readonly TimeSpan RevocationRaceMargin = TimeSpan.FromSeconds(5);

    /// <summary>Syncs one key now, or queues it when Redis is unreachable. Never throws for Redis trouble.</summary>
    public async Task PublishAsync(ApiKey key)
    {
        if (key.TeamId is { } teamId && key.Team is null && key.IsActiveAt(time.GetUtcNow()))
        {
            key.Team = await db.Teams.AsNoTracking().SingleOrDefaultAsync(t => t.Id == teamId);
            if (key.Team is null)
            {
                // The team was deleted meanwhile (its keys lose it): publish the key as the database has it now.
                key = await db.ApiKeys.AsNoTracking().Include(k => k.Team).SingleAsync(k => k.Id == key.Id);
            }
        }
        if (!writer.IsConnected)
        {
            // Fail fast instead of waiting for the client's backlog timeout on every admin request.
            LogQueued(logger, key.Id, "Redis is not connected");
            queue.Enqueue(key.Id);
            return;
        }

        try
        {
            await writer.SyncAsync(key);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogQueued(logger, key.Id, e.Message);
            queue.Enqueue(key.Id);
        }
    }

    /// <summary>
    /// Publishes the key as the database has it now (not as a caller's possibly stale entity) and returns that state.
    /// If a revoke committed while we wrote an active snapshot, the snapshot is removed again: a revoke that commits
    /// later deletes after our write anyway, so a revoked key can never be resurrected in Redis by an update.
    /// </summary>
    public async Task<ApiKey?> PublishCurrentAsync(Guid keyId, CancellationToken cancellationToken)
    {
        var key = await db.ApiKeys.AsNoTracking().Include(k => k.Team).SingleOrDefaultAsync(k => k.Id == keyId, cancellationToken);
        if (key is null)
        {
            return null;
        }

        await PublishAsync(key);
        if (key.IsActiveAt(time.GetUtcNow()))
        {
            var revoked = await db.ApiKeys.AsNoTracking()
                .SingleOrDefaultAsync(k => k.Id == keyId && k.RevokedAt != null, cancellationToken);
            if (revoked is not null)
            {
                await PublishAsync(revoked);
                return revoked;
            }
        }
        return key;
    }

    /// <summary>Republishes every active key and deletes the hashes of inactive ones. Returns how many were published.</summary>
    public async Task<int> ReconcileAllAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var keys = await db.ApiKeys.AsNoTracking().Include(k => k.Team).OrderBy(k => k.CreatedAt).ToListAsync(cancellationToken);
        foreach (var batch in keys.Chunk(ReconcileBatchSize))
        {
            // Pipelined: one round trip's latency per batch, not per key. Only removals are announced: gateways'
            // auth caches are short-lived, but a revoked key must stop working at once.
            await Task.WhenAll(batch.Select(k => writer.SyncAsync(k, announce: !k.IsActiveAt(now))));
        }
        await ReapplyRevocationsSinceAsync(now, cancellationToken);
        return keys.Count(k => k.IsActiveAt(now));
    }

    /// <summary>
    /// Republishes every key of a team (its budget, limits or allow-list changed, or it was deleted), or queues them when
    /// Redis is unreachable. Gateways drop their cached copy of each at once.
    /// </summary>
    public async Task PublishKeysAsync(IReadOnlyCollection<Guid> keyIds, CancellationToken cancellationToken)
    {
        if (keyIds.Count == 0)
        {
            return;
        }
        if (!writer.IsConnected)
        {
            foreach (var id in keyIds)
            {
                LogQueued(logger, id, "Redis is not connected");
                queue.Enqueue(id);
            }
            return;
        }
        try
        {
            await SyncByIdAsync(keyIds, cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            foreach (var id in keyIds)
            {
                LogQueued(logger, id, e.Message);
                queue.Enqueue(id);
            }
        }
    }

    /// <summary>Syncs the given keys from their current database state (the worker's retry path).</summary>
    public async Task SyncByIdAsync(IReadOnlyCollection<Guid> keyIds, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var keys = await db.ApiKeys.AsNoTracking().Include(k => k.Team).Where(k => keyIds.Contains(k.Id)).ToListAsync(cancellationToken);
        await Task.WhenAll(keys.Select(k => writer.SyncAsync(k)));
        await ReapplyRevocationsSinceAsync(now, cancellationToken);
    }

    /// <summary>
    /// A revoke that commits while a bulk write is in flight may have its Redis delete overtaken by our (older)
    /// snapshot of the key. Deleting what was revoked since the bulk read began closes that window: a revoke that
    /// commits later deletes after our write anyway.
    /// </summary>
    private async Task ReapplyRevocationsSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        var threshold = since - RevocationRaceMargin;
        var revoked = await db.ApiKeys.AsNoTracking().Include(k => k.Team).Where(k => k.RevokedAt >= threshold).ToListAsync(cancellationToken);
        await Task.WhenAll(revoked.Select(k => writer.SyncAsync(k)));
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Could not write API key {KeyId} to Redis ({Reason}); the database has it and a background retry is queued")]
    private static partial void LogQueued(ILogger logger, Guid keyId, string reason);
}
