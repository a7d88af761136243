using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Quotas;

/// <summary>
/// Gives quota spend back to Redis when Redis lost it. Gateways keep each budget's settled spend in
/// <see cref="RedisContract.QuotaKey(string, long?)"/> (<see cref="RedisContract.QuotaFields.SpentNanoUsd"/>, nano-USD) — per
/// key, per team, and per period for budgets with a <c>budget_duration</c>; after a FLUSHALL or a restart without
/// persistence it would start again at 0 and a spent budget would be spendable twice.
/// </summary>
/// <remarks>
/// The seed is the ledger's SUM(cost_usd) for the key (a team: for its keys) in the current period (all time for a
/// lifetime budget), written with HSETNX: a gateway that has already booked spend since the flush (its value is newer) is
/// never overwritten, and re-running the seed is harmless. Runs at start-up, after a Redis reconnect and when a key gets a
/// quota. What the ledger has not stored yet when Redis is flushed (entries still in the stream) is lost with the stream,
/// so the seed can be short by that much. A seeded period hash expires like the gateways' own.
/// </remarks>
public sealed class QuotaSpendSeeder(AdminDbContext db, IConnectionMultiplexer redis, BudgetLedger ledger)
{
    private const decimal NanosPerUsd = 1_000_000_000m;

    /// <summary>Seeds every non-revoked key with a quota and every team with a budget. Returns how many hashes were missing their spend.</summary>
    public async Task<int> SeedAllAsync(CancellationToken cancellationToken)
    {
        // Disabled and expired keys too: a PATCH can bring them back, and their spend must come back with them.
        var keys = await db.ApiKeys.AsNoTracking()
            .Where(k => k.QuotaUsd != null && k.RevokedAt == null)
            .Select(k => new { k.Id, k.BudgetDuration })
            .ToListAsync(cancellationToken);
        var seeded = 0;
        foreach (var key in keys)
        {
            var period = ledger.CurrentPeriod(key.BudgetDuration);
            var spent = await ledger.SpentAsync([key.Id], period, cancellationToken);
            if (await SeedAsync(key.Id.ToString("D"), period, spent)) seeded++;
        }

        var teams = await db.Teams.AsNoTracking().Where(t => t.BudgetUsd != null).ToListAsync(cancellationToken);
        foreach (var team in teams)
        {
            if (await SeedTeamAsync(team, cancellationToken)) seeded++;
        }
        return seeded;
    }

    /// <summary>Seeds one key (it just got a quota). Returns whether its hash was missing the spend.</summary>
    public async Task<bool> SeedAsync(Guid keyId, CancellationToken cancellationToken)
    {
        var duration = await db.ApiKeys.AsNoTracking().Where(k => k.Id == keyId).Select(k => k.BudgetDuration).SingleOrDefaultAsync(cancellationToken);
        var period = ledger.CurrentPeriod(duration);
        var spent = await ledger.SpentAsync([keyId], period, cancellationToken);
        return await SeedAsync(keyId.ToString("D"), period, spent);
    }

    /// <summary>Seeds a team's current period from its keys' ledger spend. Returns whether its hash was missing the spend.</summary>
    public async Task<bool> SeedTeamAsync(Team team, CancellationToken cancellationToken)
    {
        var period = ledger.CurrentPeriod(team.BudgetDuration);
        var keyIds = await db.ApiKeys.AsNoTracking().Where(k => k.TeamId == team.Id).Select(k => k.Id).ToListAsync(cancellationToken);
        var spent = await ledger.SpentAsync(keyIds, period, cancellationToken);
        return await SeedAsync(RedisContract.TeamScope(team.Id.ToString("D")), period, spent);
    }

    private async Task<bool> SeedAsync(string scopeId, BudgetPeriod? period, decimal spentUsd)
    {
        var redisDb = redis.GetDatabase();
        var hash = RedisContract.QuotaKey(scopeId, period?.StartUnixSeconds);
        var seeded = await redisDb.HashSetAsync(hash, RedisContract.QuotaFields.SpentNanoUsd, ToNanos(spentUsd), When.NotExists);
        if (seeded && period is { } p)
        {
            var length = p.End - p.Start;
            await redisDb.KeyExpireAsync(hash, (p.End + (length < TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : length)).UtcDateTime);
        }
        return seeded;
    }

    /// <summary>Rounded to the nearest nano-USD, as gateways book settled costs.</summary>
    internal static long ToNanos(decimal usd) =>
        usd <= 0 ? 0 : (long)Math.Min(decimal.Round(usd * NanosPerUsd, MidpointRounding.AwayFromZero), long.MaxValue);
}
