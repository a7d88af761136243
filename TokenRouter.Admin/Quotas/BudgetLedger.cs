using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Quotas;

/// <summary>
/// A budget's state for reports: its current period (for a <c>budget_duration</c>), what the ledger holds as spent in it,
/// and what the gateways' Redis counters say (spent and reserved, including requests the ledger has not stored yet).
/// </summary>
public sealed record BudgetReport(
    decimal? BudgetUsd,
    string? BudgetDuration,
    DateTimeOffset? PeriodStart,
    DateTimeOffset? NextReset,
    decimal SpentUsd,
    decimal? RemainingUsd,
    decimal? GatewaySpentUsd,
    decimal? GatewayReservedUsd);

/// <summary>Spend of keys and teams per budget period, from the ledger and from the gateways' counters.</summary>
public sealed class BudgetLedger(AdminDbContext db, IConnectionMultiplexer redis, BudgetPeriods periods)
{
    /// <summary>The current period of a budget duration (null: lifetime, or an unparsable duration).</summary>
    public BudgetPeriod? CurrentPeriod(string? budgetDuration) =>
        BudgetDuration.TryParse(budgetDuration, out var duration) ? periods.Current(duration) : null;

    /// <summary>The ledger's spend of some keys in a period (all time when null).</summary>
    public async Task<decimal> SpentAsync(IReadOnlyCollection<Guid> keyIds, BudgetPeriod? period, CancellationToken cancellationToken)
    {
        if (keyIds.Count == 0)
        {
            return 0m;
        }
        var records = db.UsageRecords.Where(u => u.ApiKeyId != null && keyIds.Contains(u.ApiKeyId.Value));
        if (period is { } p)
        {
            records = records.Where(u => u.CreatedAt >= p.Start && u.CreatedAt < p.End);
        }
        return (await records.SumAsync(u => u.CostUsd, cancellationToken) ?? 0m).Trimmed();
    }

    public async Task<BudgetReport> KeyReportAsync(ApiKey key, CancellationToken cancellationToken)
    {
        var period = CurrentPeriod(key.BudgetDuration);
        var spent = await SpentAsync([key.Id], period, cancellationToken);
        var (gatewaySpent, gatewayReserved) = await ReadGatewayAsync(key.Id.ToString("D"), period);
        return Report(key.QuotaUsd, key.BudgetDuration, period, spent, gatewaySpent, gatewayReserved);
    }

    public async Task<BudgetReport> TeamReportAsync(Team team, CancellationToken cancellationToken)
    {
        var period = CurrentPeriod(team.BudgetDuration);
        var keyIds = await db.ApiKeys.AsNoTracking().Where(k => k.TeamId == team.Id).Select(k => k.Id).ToListAsync(cancellationToken);
        var spent = await SpentAsync(keyIds, period, cancellationToken);
        var (gatewaySpent, gatewayReserved) = await ReadGatewayAsync(RedisContract.TeamScope(team.Id.ToString("D")), period);
        return Report(team.BudgetUsd, team.BudgetDuration, period, spent, gatewaySpent, gatewayReserved);
    }

    private static BudgetReport Report(decimal? budget, string? duration, BudgetPeriod? period, decimal spent,
        decimal? gatewaySpent, decimal? gatewayReserved)
    {
        var used = Math.Max(spent, gatewaySpent ?? 0m);
        return new BudgetReport(budget.Trimmed(), duration, period?.Start, period?.End, spent,
            budget is { } b ? Math.Max(0m, b - used).Trimmed() : null, gatewaySpent, gatewayReserved);
    }

    private async Task<(decimal? Spent, decimal? Reserved)> ReadGatewayAsync(string scopeId, BudgetPeriod? period)
    {
        if (!redis.IsConnected)
        {
            return (null, null);
        }
        try
        {
            var values = await redis.GetDatabase().HashGetAsync(RedisContract.QuotaKey(scopeId, period?.StartUnixSeconds),
                [RedisContract.QuotaFields.SpentNanoUsd, RedisContract.QuotaFields.ReservedNanoUsd]);
            return (FromNanos(values[0]), FromNanos(values[1]));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return (null, null);
        }

        static decimal? FromNanos(RedisValue value) =>
            !value.IsNull && value.TryParse(out long nanos) ? (nanos / 1_000_000_000m).Trimmed() : null;
    }
}
