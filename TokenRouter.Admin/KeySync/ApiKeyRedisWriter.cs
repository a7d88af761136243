using System.Globalization;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.KeySync;

/// <summary>Writes one key's snapshot to Redis in the shape <see cref="RedisContract"/> defines.</summary>
public sealed class ApiKeyRedisWriter(IConnectionMultiplexer redis, TimeProvider time)
{
    public bool IsConnected => redis.IsConnected;

    /// <summary>
    /// Publishes an active key (replacing the whole hash, so a limit that was removed disappears too) or deletes an
    /// inactive one, then tells gateways on <see cref="RedisContract.KeysChangedChannel"/> when anything changed.
    /// </summary>
    public async Task SyncAsync(ApiKey key, bool announce = true)
    {
        var db = redis.GetDatabase();
        var redisKey = (RedisKey)RedisContract.ApiKeyHashKey(key.KeyHash);
        bool changed;

        if (key.IsActiveAt(time.GetUtcNow()))
        {
            // DEL + HSET in one MULTI/EXEC: a gateway never reads a half-written or briefly missing hash.
            var transaction = db.CreateTransaction();
            _ = transaction.KeyDeleteAsync(redisKey);
            _ = transaction.HashSetAsync(redisKey, ToHashEntries(key));
            if (!await transaction.ExecuteAsync())
            {
                throw new RedisException($"Redis did not commit the snapshot of API key {key.Id}.");
            }
            changed = true;
        }
        else
        {
            changed = await db.KeyDeleteAsync(redisKey);
        }

        if (announce && changed)
        {
            await redis.GetSubscriber().PublishAsync(RedisChannel.Literal(RedisContract.KeysChangedChannel), key.KeyHash);
        }
    }

    internal static HashEntry[] ToHashEntries(ApiKey key)
    {
        var entries = new List<HashEntry>(7)
        {
            new(RedisContract.KeyFields.Id, key.Id.ToString("D")),
            new(RedisContract.KeyFields.Name, key.Name),
            new(RedisContract.KeyFields.Enabled, key.Enabled ? "1" : "0"),
        };
        // Absent fields mean "no limit" (contract), so nulls are left out rather than written as empty strings.
        if (key.QuotaUsd is { } quota)
        {
            entries.Add(new(RedisContract.KeyFields.QuotaUsd, quota.Trimmed().ToString(CultureInfo.InvariantCulture)));
        }
        if (key.ExpiresAt is { } expires)
        {
            entries.Add(new(RedisContract.KeyFields.ExpiresAtUnix, expires.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)));
        }
        if (key.RequestsPerMinute is { } rpm)
        {
            entries.Add(new(RedisContract.KeyFields.RequestsPerMinute, rpm.ToString(CultureInfo.InvariantCulture)));
        }
        if (key.TokensPerMinute is { } tpm)
        {
            entries.Add(new(RedisContract.KeyFields.TokensPerMinute, tpm.ToString(CultureInfo.InvariantCulture)));
        }
        return [.. entries];
    }
}
