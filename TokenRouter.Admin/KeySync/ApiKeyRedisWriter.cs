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
        if (key.BudgetDuration is { Length: > 0 } duration)
        {
            entries.Add(new(RedisContract.KeyFields.BudgetDuration, duration));
        }
        if (key.Models is { Length: > 0 } models)
        {
            entries.Add(new(RedisContract.KeyFields.Models, models));
        }
        if (key.TeamId is { } teamId)
        {
            // A key in a team is never published without it: that would let it spend past the team's budget.
            var team = key.Team ?? throw new InvalidOperationException($"API key {key.Id} was loaded without its team.");
            entries.Add(new(RedisContract.KeyFields.TeamId, teamId.ToString("D")));
            entries.Add(new(RedisContract.KeyFields.TeamName, team.Name));
            if (team.BudgetUsd is { } budget)
            {
                entries.Add(new(RedisContract.KeyFields.TeamBudgetUsd, budget.Trimmed().ToString(CultureInfo.InvariantCulture)));
            }
            if (team.BudgetDuration is { Length: > 0 } teamDuration)
            {
                entries.Add(new(RedisContract.KeyFields.TeamBudgetDuration, teamDuration));
            }
            if (team.RequestsPerMinute is { } teamRpm)
            {
                entries.Add(new(RedisContract.KeyFields.TeamRequestsPerMinute, teamRpm.ToString(CultureInfo.InvariantCulture)));
            }
            if (team.TokensPerMinute is { } teamTpm)
            {
                entries.Add(new(RedisContract.KeyFields.TeamTokensPerMinute, teamTpm.ToString(CultureInfo.InvariantCulture)));
            }
            if (team.Models is { Length: > 0 } teamModels)
            {
                entries.Add(new(RedisContract.KeyFields.TeamModels, teamModels));
            }
        }
        return [.. entries];
    }
}
