using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Quotas;

/// <summary>
/// Gives quota spend back to Redis when Redis lost it. Gateways keep each quota key's settled spend in
/// <see cref="RedisContract.QuotaKey"/> (<see cref="RedisContract.QuotaFields.SpentNanoUsd"/>, nano-USD); after a
/// FLUSHALL or a restart without persistence it would start again at 0 and a spent quota would be spendable twice.
/// </summary>
/// <remarks>
/// The seed is the ledger's SUM(cost_usd) for the key, written with HSETNX: a gateway that has already booked spend
/// since the flush (its value is newer) is never overwritten, and re-running the seed is harmless. Runs at start-up,
/// after a Redis reconnect and when a key gets a quota. What the ledger has not stored yet when Redis is flushed
/// (entries still in the stream) is lost with the stream, so the seed can be short by that much.
/// </remarks>
public sealed class QuotaSpendSeeder(AdminDbContext db, IConnectionMultiplexer redis)
{
    private const decimal NanosPerUsd = 1_000_000_000m;

    /// <summary>Seeds every non-revoked key that has a quota. Returns how many hashes were missing their spend.</summary>
    public async Task<int> SeedAllAsync(CancellationToken cancellationToken)
    {
        // Disabled and expired keys too: a PATCH can bring them back, and their spend must come back with them.
        var spends = await db.ApiKeys.AsNoTracking()
            .Where(k => k.QuotaUsd != null && k.RevokedAt == null)
            .Select(k => new { k.Id, Spent = db.UsageRecords.Where(u => u.ApiKeyId == k.Id).Sum(u => u.CostUsd) })
            .ToListAsync(cancellationToken);

        var redisDb = redis.GetDatabase();
        var results = await Task.WhenAll(spends.Select(s => SeedAsync(redisDb, s.Id, s.Spent ?? 0m)));
        return results.Count(seeded => seeded);
    }

    /// <summary>Seeds one key (it just got a quota). Returns whether its hash was missing the spend.</summary>
    public async Task<bool> SeedAsync(Guid keyId, CancellationToken cancellationToken)
    {
        var spent = await db.UsageRecords.Where(u => u.ApiKeyId == keyId).SumAsync(u => u.CostUsd, cancellationToken);
        return await SeedAsync(redis.GetDatabase(), keyId, spent ?? 0m);
    }

    private static Task<bool> SeedAsync(IDatabase redisDb, Guid keyId, decimal spentUsd) =>
        redisDb.HashSetAsync(RedisContract.QuotaKey(keyId.ToString("D")), RedisContract.QuotaFields.SpentNanoUsd,
            ToNanos(spentUsd), When.NotExists);

    /// <summary>Rounded to the nearest nano-USD, as gateways book settled costs.</summary>
    internal static long ToNanos(decimal usd) =>
        usd <= 0 ? 0 : (long)Math.Min(decimal.Round(usd * NanosPerUsd, MidpointRounding.AwayFromZero), long.MaxValue);
}
