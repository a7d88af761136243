using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Resilience;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// The Redis limits store with a defined degraded mode (<see cref="RedisOutagePolicy"/>). While Redis answers it is
/// <see cref="RedisKeyLimitStore"/>, and it remembers each quota key's remaining budget as last seen. While Redis is down
/// (<see cref="RedisCircuit"/>, no per-request wait once known):
/// <list type="bullet">
/// <item>fail-closed: every admission that needs the store is refused with 503 + Retry-After.</item>
/// <item>fail-open: RPM/TPM are counted in this process (<see cref="LocalKeyLimitStore"/>); a quota key is admitted
/// only within its last known remaining budget, which is drawn down locally; a quota key never seen since start-up is
/// refused (503): there is nothing to bound it by.</item>
/// </list>
/// What outage admissions really cost is booked into the key's Redis spend when Redis returns (the settlement is
/// deferred by <see cref="RedisKeyLimitStore"/>).
/// </summary>
public sealed partial class DegradableKeyLimitStore : IKeyLimitStore, IAsyncDisposable, IDisposable
{
    // Hold ids of degraded admissions: Redis holds look like "{instance}-{n}:{nanos}", so this prefix cannot clash.
    private const char DegradedHold = '~';

    private readonly RedisKeyLimitStore _redis;
    private readonly RedisCircuit _circuit;
    private readonly IOptionsMonitor<RedisOutageOptions> _options;
    private readonly GatewayMetrics _metrics;
    private readonly ILogger<DegradableKeyLimitStore> _logger;
    private readonly LocalKeyLimitStore _local = new();
    private readonly ConcurrentDictionary<string, Budget> _budgets = new(StringComparer.Ordinal);
    private readonly string _instance = Guid.NewGuid().ToString("N")[..12];
    private long _holdSequence;

    private sealed class Budget
    {
        public readonly Lock Gate = new();
        public long RemainingNanos;
    }

    public DegradableKeyLimitStore(RedisKeyLimitStore redis, RedisCircuit circuit, IOptionsMonitor<RedisOutageOptions> options,
        GatewayMetrics metrics, ILogger<DegradableKeyLimitStore> logger)
    {
        _redis = redis;
        _circuit = circuit;
        _options = options;
        _metrics = metrics;
        _logger = logger;
    }

    public RedisKeyLimitStore Redis => _redis;

    /// <summary>The key's last known remaining quota in nano-USD (null when never seen), for tests and diagnostics.</summary>
    public long? KnownRemainingNanos(string keyId, QuotaPeriod period = default) =>
        _budgets.TryGetValue(BudgetId(keyId, period), out var b) ? Volatile.Read(ref b.RemainingNanos) : null;

    public async ValueTask<KeyAdmitResult> AdmitAsync(KeyAdmitRequest r)
    {
        if (!_circuit.IsDown)
        {
            // Through the breaker by hand rather than ExecuteAsync: one async state machine (and copy of the request)
            // less per admission.
            bool probe;
            KeyAdmitResult result;
            try
            {
                probe = _circuit.Enter();
            }
            catch (RedisException)
            {
                return Degraded(r);
            }
            try
            {
                result = await _redis.AdmitAsync(r);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                _circuit.Failed(probe, ex); // the circuit now knows; this request takes the degraded path
                return Degraded(r);
            }
            catch
            {
                _circuit.Abandoned(probe);
                throw;
            }
            _circuit.Succeeded(probe);
            var admitted = result.Outcome == KeyAdmitOutcome.Admitted;
            var refusedByQuota = result.Outcome == KeyAdmitOutcome.QuotaExceeded;
            if (r.QuotaNanos is { } quota && (admitted || (refusedByQuota && result.RefusedBy == LimitScope.Key)))
            {
                Remember(BudgetId(r.KeyId, r.KeyPeriod),
                    quota - result.SpentNanos - result.ReservedNanos - (admitted ? r.ReserveNanos : 0));
            }
            if (r.Team is { QuotaNanos: { } teamQuota } team)
            {
                if (admitted)
                    Remember(BudgetId(team.ScopeId, team.Period), teamQuota - result.TeamSpentNanos - result.TeamReservedNanos - r.ReserveNanos);
                else if (refusedByQuota && result.RefusedBy == LimitScope.Team)
                    Remember(BudgetId(team.ScopeId, team.Period), teamQuota - result.SpentNanos - result.ReservedNanos);
            }
            return result;
        }
        return Degraded(r);
    }

    private KeyAdmitResult Degraded(KeyAdmitRequest r)
    {
        var o = _options.CurrentValue;
        if (o.ParsedPolicy == RedisOutagePolicy.FailClosed) throw Refuse(o, "fail_closed");

        Budget? budget = null, teamBudget = null;
        if (r.QuotaNanos is not null && !_budgets.TryGetValue(BudgetId(r.KeyId, r.KeyPeriod), out budget)) throw Refuse(o, "quota_unknown");
        if (r.Team is { QuotaNanos: not null } team && !_budgets.TryGetValue(BudgetId(team.ScopeId, team.Period), out teamBudget))
            throw Refuse(o, "quota_unknown");

        // RPM/TPM per replica: with N replicas a key may reach N times its limits until Redis returns.
        var rated = _local.AdmitAsync(r with
        {
            QuotaNanos = null,
            ReserveNanos = 0,
            Team = r.Team is null ? null : r.Team with { QuotaNanos = null },
        }).Result;
        if (rated.Outcome != KeyAdmitOutcome.Admitted)
        {
            _metrics.DegradedAdmission("rate_limited");
            return rated;
        }
        if (budget is not null || teamBudget is not null)
        {
            // Key then team, as everywhere: both are drawn down or neither.
            lock (budget?.Gate ?? teamBudget!.Gate)
            {
                lock (teamBudget?.Gate ?? budget!.Gate)
                {
                    if (Short(budget, r.ReserveNanos) || Short(teamBudget, r.ReserveNanos))
                    {
                        // Nothing proves the quota is spent (Redis may have released reservations): ask to retry, not a 429.
                        // The request was already counted for RPM locally; that errs on the side of the limit.
                        throw Refuse(o, "budget_exhausted");
                    }
                    if (budget is not null) budget.RemainingNanos -= r.ReserveNanos;
                    if (teamBudget is not null) teamBudget.RemainingNanos -= r.ReserveNanos;
                }
            }
        }
        _metrics.DegradedAdmission("admitted");
        // Every degraded admission carries a hold, so its settlement stays local ('q': it also drew on a budget).
        var hold = string.Create(CultureInfo.InvariantCulture,
            $"{DegradedHold}{(budget is null && teamBudget is null ? 'r' : 'q')}{_instance}-{Interlocked.Increment(ref _holdSequence)}:0");
        return rated with { HoldId = hold };
    }

    private static bool Short(Budget? budget, long reserve) =>
        budget is not null && (budget.RemainingNanos <= 0 || budget.RemainingNanos < reserve);

    private static string BudgetId(string scopeId, QuotaPeriod period) =>
        period.Start is { } start ? string.Create(CultureInfo.InvariantCulture, $"{scopeId}:p{start}") : scopeId;

    private void Remember(string budgetId, long remaining)
    {
        var budget = _budgets.GetOrAdd(budgetId, static _ => new Budget());
        lock (budget.Gate) budget.RemainingNanos = remaining;
    }

    private ApiError Refuse(RedisOutageOptions o, string outcome)
    {
        _metrics.DegradedAdmission(outcome);
        _metrics.Rejected(LimitErrors.Reasons.StoreUnavailable);
        return LimitErrors.StoreUnavailable(o.RetryAfterSeconds);
    }

    public ValueTask SettleAsync(KeySettlement s)
    {
        if (s.HoldId is { Length: > 0 } hold && hold[0] == DegradedHold)
        {
            // Admitted during the outage: TPM was charged here, the budget locally, and Redis never saw a reservation.
            if (s.Window is not null || s.Team?.Window is not null) _local.SettleAsync(s with { HoldId = null });
            if (hold[1] != 'q') return ValueTask.CompletedTask;
            Credit(s, s.ReservedNanos - s.ActualNanos);
            // Book the real spend into Redis (deferred until it answers): an unknown hold on a first attempt books it.
            return s.ActualNanos == 0
                ? ValueTask.CompletedTask
                : _redis.SettleAsync(new KeySettlement(s.KeyId, hold, 0, s.ActualNanos, null, 0, s.NowUnixMs, s.KeyPeriod,
                    s.Team is null ? null : s.Team with { Window = null }, s.KeyHoldsQuota));
        }
        if (s.HoldId is not null) Credit(s, s.ReservedNanos - s.ActualNanos);
        return _redis.SettleAsync(s);
    }

    private void Credit(KeySettlement s, long nanos)
    {
        if (nanos == 0) return;
        if ((s.Team is null || s.KeyHoldsQuota) && _budgets.TryGetValue(BudgetId(s.KeyId, s.KeyPeriod), out var budget))
        {
            lock (budget.Gate) budget.RemainingNanos += nanos;
        }
        if (s.Team is { HoldsQuota: true } team && _budgets.TryGetValue(BudgetId(team.ScopeId, team.Period), out var teamBudget))
        {
            lock (teamBudget.Gate) teamBudget.RemainingNanos += nanos;
        }
    }

    public ValueTask DisposeAsync() => _redis.DisposeAsync();

    public void Dispose() => _redis.Dispose();
}
