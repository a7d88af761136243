using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// The one gate between a prepared request and its provider: the key's and its team's model allow-lists, this process's
/// concurrency limits, the key's and its team's RPM/TPM and USD budgets (per period when they have a
/// <c>budget_duration</c>), checked in that order and charged atomically (key and team in one store call). Refusals are <see cref="ApiError"/> 429s
/// (503 when the quota store is unreachable) thrown before anything is sent upstream.
/// </summary>
/// <remarks>
/// Cost on the hot path: a key with no quota and no RPM/TPM touches only interlocked counters; otherwise one store
/// call (one Lua script with Redis) at admission and one at disposal. <c>Limits:Enabled=false</c>
/// (<c>RATE_LIMIT_ENABLED</c>) turns off concurrency limits and RPM/TPM; quotas stay on, they are money.
/// While Redis is down the store degrades per <c>REDIS_OUTAGE_POLICY</c> (<see cref="DegradableKeyLimitStore"/>); a bare
/// <see cref="RedisKeyLimitStore"/> that fails refuses a key with a quota (503) and lets a key with only RPM/TPM through.
/// </remarks>
public sealed partial class AdmissionController(
    IOptionsMonitor<LimitsOptions> options,
    PriceTable prices,
    ConcurrencyLimiter concurrency,
    IKeyLimitStore store,
    GatewayMetrics metrics,
    TimeProvider time,
    BudgetPeriods periods,
    ILogger<AdmissionController> logger)
{
    private readonly ConcurrentDictionary<string, bool> _unpricedLogged = new(StringComparer.OrdinalIgnoreCase);
    private int _storeOutage;

    public ConcurrencyLimiter Concurrency => concurrency;

    /// <summary>
    /// Admits a request that will be sent upstream, or throws the <see cref="ApiError"/> to answer with. The caller
    /// must dispose the result when the upstream exchange is over (after the last byte, or on failure), having called
    /// <see cref="Admission.Settle"/> with the real cost once it is known.
    /// </summary>
    /// <param name="promptBytes">Size of the outbound request body: the prompt estimate for TPM and the quota.</param>
    /// <param name="maxTokens">The request's completion cap; null uses <see cref="LimitsOptions.QuotaDefaultMaxTokens"/>.</param>
    public async ValueTask<Admission> AdmitAsync(ClientIdentity identity, string upstreamModel, string providerName, bool stream,
        int promptBytes, int? maxTokens, CancellationToken ct)
    {
        // The store call itself is not cancelled: abandoning a script that may still run could strand a reservation.
        ct.ThrowIfCancellationRequested();
        EnsureAllowed(identity, upstreamModel);
        var o = options.CurrentValue;
        StrongBox<int>? providerSlot = null;
        if (o.Enabled)
        {
            var refused = concurrency.TryAcquire(stream, providerName, o, out providerSlot);
            if (refused != ConcurrencyRejection.None) throw RejectConcurrency(refused, o);
        }

        var admission = new Admission(concurrency, providerSlot, stream);
        var rpm = o.Enabled ? identity.RequestsPerMinute : null;
        var tpm = o.Enabled ? identity.TokensPerMinute : null;
        var quota = identity.QuotaUsd;
        var team = identity.Team;
        var teamRpm = o.Enabled ? team?.RequestsPerMinute : null;
        var teamTpm = o.Enabled ? team?.TokensPerMinute : null;
        var teamBudget = team?.BudgetUsd;
        var teamLimited = teamRpm is not null || teamTpm is not null || teamBudget is not null;
        if (rpm is null && tpm is null && quota is null && !teamLimited) return admission;

        try
        {
            var estimated = QuotaEstimator.EstimatePromptTokens(promptBytes);
            decimal reserveUsd = 0;
            var unpriced = false;
            if (quota is not null || teamBudget is not null)
            {
                if (prices.TryGet(upstreamModel, out var price))
                    reserveUsd = QuotaEstimator.WorstCaseCostUsd(price, promptBytes, maxTokens, o.QuotaDefaultMaxTokens);
                else
                {
                    unpriced = true; // let through with nothing reserved; its usage record is flagged unpriced
                    if (_unpricedLogged.TryAdd(upstreamModel, true)) LogUnpricedUnderQuota(upstreamModel);
                }
            }
            var reserve = QuotaEstimator.ToNanosCeiling(reserveUsd);
            var now = time.GetUtcNow();
            BudgetPeriod? keyPeriod = quota is not null && identity.BudgetDuration is { } kd ? periods.At(kd, now) : null;
            BudgetPeriod? teamPeriod = teamBudget is not null && team!.BudgetDuration is { } td ? periods.At(td, now) : null;
            var keyQuotaPeriod = keyPeriod is { } kp ? QuotaPeriod.Of(kp) : default;
            var teamQuotaPeriod = teamPeriod is { } tp ? QuotaPeriod.Of(tp) : default;
            var teamRequest = teamLimited
                ? new TeamAdmitRequest(team!.ScopeId, teamRpm, teamTpm, teamBudget is { } tb ? QuotaEstimator.ToNanosFloor(tb) : null,
                    teamQuotaPeriod)
                : null;
            var request = new KeyAdmitRequest(identity.KeyId, rpm, tpm, estimated,
                quota is { } q ? QuotaEstimator.ToNanosFloor(q) : null, reserve, now.ToUnixTimeMilliseconds(),
                o.QuotaReservationTtl, keyQuotaPeriod, teamRequest);

            // The store is awaited here rather than through a helper: on Redis every layer of async method is a state
            // machine allocated per request, each carrying its own copy of the request.
            KeyAdmitResult r;
            try
            {
                r = await store.AdmitAsync(request);
                StoreAnswered();
            }
            catch (RedisException ex)
            {
                StoreFailed(ex, hasQuota: quota is not null || teamBudget is not null);
                return admission; // store down, no quota: rate limits fail open
            }
            var byTeam = r.RefusedBy == LimitScope.Team;
            switch (r.Outcome)
            {
                case KeyAdmitOutcome.RequestsPerMinuteExceeded:
                    metrics.Rejected(LimitErrors.Reasons.RequestsPerMinute);
                    throw LimitErrors.RequestsPerMinute(byTeam ? teamRpm!.Value : rpm!.Value, r.Used,
                        RetryAfter(request.NowUnixMs, r.Window), byTeam ? team!.Name : null);
                case KeyAdmitOutcome.TokensPerMinuteExceeded:
                    metrics.Rejected(LimitErrors.Reasons.TokensPerMinute);
                    throw LimitErrors.TokensPerMinute(byTeam ? teamTpm!.Value : tpm!.Value, r.Used, estimated,
                        RetryAfter(request.NowUnixMs, r.Window), byTeam ? team!.Name : null);
                case KeyAdmitOutcome.QuotaExceeded when byTeam:
                    metrics.Rejected(LimitErrors.Reasons.TeamBudget);
                    throw LimitErrors.TeamBudget(team!.Name, teamBudget!.Value, r.SpentNanos, r.ReservedNanos, reserveUsd,
                        teamPeriod, now);
                case KeyAdmitOutcome.QuotaExceeded:
                    metrics.Rejected(LimitErrors.Reasons.Quota);
                    throw LimitErrors.Quota(quota!.Value, r.SpentNanos, r.ReservedNanos, reserveUsd, keyPeriod, now);
            }
            var teamSettlement = teamRequest is null
                ? null
                : new TeamSettlement(teamRequest.ScopeId, teamTpm is null ? null : r.TeamWindow, teamQuotaPeriod, teamBudget is not null);
            admission.Bind(store, identity.KeyId, r.HoldId, reserve, tpm is null ? null : r.Window, estimated, unpriced,
                time, keyQuotaPeriod, teamSettlement, quota is not null);
            return admission;
        }
        catch
        {
            await admission.DisposeAsync(); // gives the concurrency slots back; nothing was charged
            throw;
        }
    }

    /// <summary>
    /// Admits a request served from another request's in-flight response (a dedup follower): it counts against the
    /// key's RPM but takes no concurrency slot, charges no TPM and reserves no quota, since nothing goes upstream for
    /// it. Dispose it like any admission; settling it is not needed (it costs nothing). Its allow-list still holds: with
    /// <c>DEDUP_SCOPE=Global</c> the leader may be another key's request for a model this key may not use.
    /// </summary>
    public async ValueTask<Admission> AdmitFollowerAsync(ClientIdentity identity, string upstreamModel, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        EnsureAllowed(identity, upstreamModel);
        var o = options.CurrentValue;
        var admission = new Admission(concurrency, null, false);
        var teamRpm = identity.Team?.RequestsPerMinute;
        if (!o.Enabled || (identity.RequestsPerMinute is null && teamRpm is null)) return admission;
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var team = teamRpm is null ? null : new TeamAdmitRequest(identity.Team!.ScopeId, teamRpm, null, null);
        KeyAdmitResult r;
        try
        {
            r = await store.AdmitAsync(new KeyAdmitRequest(identity.KeyId, identity.RequestsPerMinute, null, 0, null, 0, now,
                o.QuotaReservationTtl, Team: team));
            StoreAnswered();
        }
        catch (RedisException ex)
        {
            StoreFailed(ex, hasQuota: false);
            return admission;
        }
        if (r.Outcome == KeyAdmitOutcome.RequestsPerMinuteExceeded)
        {
            metrics.Rejected(LimitErrors.Reasons.RequestsPerMinute);
            var byTeam = r.RefusedBy == LimitScope.Team;
            throw LimitErrors.RequestsPerMinute(byTeam ? teamRpm!.Value : identity.RequestsPerMinute!.Value, r.Used,
                RetryAfter(now, r.Window), byTeam ? identity.Team!.Name : null);
        }
        return admission;
    }

    /// <summary>Before anything is charged or sent: a model outside the key's or its team's allow-list is a 403.</summary>
    private void EnsureAllowed(ClientIdentity identity, string upstreamModel)
    {
        if (upstreamModel.Length == 0 || identity.MayUse(upstreamModel)) return;
        metrics.Rejected(LimitErrors.Reasons.ModelNotAllowed);
        throw LimitErrors.ModelNotAllowed(upstreamModel, identity.Models is not null && !identity.Models.Allows(upstreamModel)
            ? "this API key" : $"the team '{identity.Team!.Name}'");
    }

    private void StoreAnswered()
    {
        if (_storeOutage != 0 && Interlocked.Exchange(ref _storeOutage, 0) == 1) LogStoreRecovered();
    }

    /// <summary>The store failed (logged once per outage): a request whose quota depends on it is refused with a 503;
    /// otherwise the caller lets it through.</summary>
    private void StoreFailed(RedisException ex, bool hasQuota)
    {
        if (Interlocked.Exchange(ref _storeOutage, 1) == 0) LogStoreUnavailable(ex.GetType().Name);
        if (!hasQuota) return;
        metrics.Rejected(LimitErrors.Reasons.StoreUnavailable);
        throw LimitErrors.StoreUnavailable();
    }

    /// <summary>Whole seconds until the window ends, at least 1.</summary>
    internal static int RetryAfter(long nowUnixMs, long window)
    {
        var remaining = (window + 1) * Windows.WindowMs - nowUnixMs;
        return (int)Math.Clamp((remaining + 999) / 1000, 1, 60);
    }

    private ApiError RejectConcurrency(ConcurrencyRejection refused, LimitsOptions o)
    {
        switch (refused)
        {
            case ConcurrencyRejection.Global:
                metrics.Rejected(LimitErrors.Reasons.GlobalConcurrency);
                return LimitErrors.Concurrency("gateway", o.GlobalConcurrent);
            case ConcurrencyRejection.Stream:
                metrics.Rejected(LimitErrors.Reasons.StreamConcurrency);
                return LimitErrors.Concurrency("streaming", o.StreamConcurrent);
            case ConcurrencyRejection.NonStream:
                metrics.Rejected(LimitErrors.Reasons.NonStreamConcurrency);
                return LimitErrors.Concurrency("non-streaming", o.NonStreamConcurrent);
            default:
                metrics.Rejected(LimitErrors.Reasons.ProviderConcurrency);
                return LimitErrors.Concurrency("provider", o.ProviderConcurrent);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} has no price: requests for it under a quota reserve $0 and are let through (flagged unpriced)")]
    private partial void LogUnpricedUnderQuota(string model);

    [LoggerMessage(Level = LogLevel.Error, Message = "The limits store is unreachable ({Error}): keys with a quota get 503, keys with only RPM/TPM are not rate limited until it answers")]
    private partial void LogStoreUnavailable(string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "The limits store answers again")]
    private partial void LogStoreRecovered();
}

/// <summary>
/// One admitted request's claim on the limits: concurrency slots, its TPM estimate and its quota reservation. Call
/// <see cref="Settle"/> once with the real cost and tokens, then dispose (always, in a <c>finally</c>/<c>await using</c>):
/// disposal gives the slots back and books the settlement. Disposing without <see cref="Settle"/> books $0 and 0 tokens
/// (the request failed before the provider produced anything).
/// </summary>
public sealed class Admission : IAsyncDisposable
{
    private readonly ConcurrencyLimiter _concurrency;
    private readonly StrongBox<int>? _providerSlot;
    private readonly bool _stream;
    private IKeyLimitStore? _store;
    private TimeProvider? _time;
    private string _keyId = "";
    private string? _holdId;
    private long _reservedNanos;
    private long? _window;
    private QuotaPeriod _keyPeriod;
    private TeamSettlement? _team;
    private bool _keyHoldsQuota = true;
    private long _actualNanos;
    private long _totalTokens;
    private int _settled;
    private int _disposed;

    internal Admission(ConcurrencyLimiter concurrency, StrongBox<int>? providerSlot, bool stream)
    {
        _concurrency = concurrency;
        _providerSlot = providerSlot;
        _stream = stream;
        concurrency.AdmissionOpened();
    }

    /// <summary>The worst-case cost reserved against the key's quota (0 without a quota or for an unpriced model).</summary>
    public decimal ReservedUsd => QuotaEstimator.FromNanos(_reservedNanos);

    /// <summary>Prompt tokens charged to TPM at admission (corrected at settlement).</summary>
    public int EstimatedPromptTokens { get; private set; }

    /// <summary>The key has a quota but the model has no price: nothing was reserved.</summary>
    public bool Unpriced { get; private set; }

    /// <summary>Whether a quota reservation is held (the key has a quota).</summary>
    public bool HoldsQuota => _holdId is not null;

    internal void Bind(IKeyLimitStore store, string keyId, string? holdId, long reservedNanos, long? window, int estimatedTokens,
        bool unpriced, TimeProvider time, QuotaPeriod keyPeriod = default, TeamSettlement? team = null, bool keyHoldsQuota = true)
    {
        _keyPeriod = keyPeriod;
        _team = team;
        _keyHoldsQuota = keyHoldsQuota;
        _store = store;
        _keyId = keyId;
        _holdId = holdId;
        _reservedNanos = reservedNanos;
        _window = window;
        EstimatedPromptTokens = estimatedTokens;
        Unpriced = unpriced;
        _time = time;
    }

    /// <summary>
    /// Records what the request really cost (null = unpriced, books $0) and its real total tokens (prompt +
    /// completion). The first call wins; the booking happens at disposal.
    /// </summary>
    public void Settle(decimal? actualCostUsd, int totalTokens)
    {
        if (Interlocked.CompareExchange(ref _settled, 1, 0) != 0) return;
        _actualNanos = actualCostUsd is { } cost ? QuotaEstimator.ToNanos(cost) : 0;
        _totalTokens = Math.Max(0, totalTokens);
    }

    /// <summary>Releases the concurrency slots and books the settlement (never throws; not cancellable by the client).</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return ValueTask.CompletedTask;
        if (_providerSlot is not null) _concurrency.Release(_stream, _providerSlot);
        if (_store is null || (_holdId is null && _window is null && _team?.Window is null))
        {
            _concurrency.AdmissionClosed();
            return ValueTask.CompletedTask;
        }
        var tpmCharged = _window is not null || _team?.Window is not null;
        var settling = _store.SettleAsync(new KeySettlement(_keyId, _holdId, _reservedNanos, _actualNanos, _window,
            tpmCharged ? _totalTokens - EstimatedPromptTokens : 0, _time!.GetUtcNow().ToUnixTimeMilliseconds(), _keyPeriod, _team,
            _keyHoldsQuota));
        if (!settling.IsCompleted) return AwaitSettlementAsync(settling);
        _concurrency.AdmissionClosed();
        return settling;
    }

    private async ValueTask AwaitSettlementAsync(ValueTask settling)
    {
        try
        {
            await settling;
        }
        finally
        {
            _concurrency.AdmissionClosed();
        }
    }
}
