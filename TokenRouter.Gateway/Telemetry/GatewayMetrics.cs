using System.Diagnostics;
using System.Diagnostics.Metrics;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Telemetry;

/// <summary>
/// The gateway's instruments, created once on the <c>TokenRouter.Gateway</c> meter (collected by ServiceDefaults and
/// exported at <c>/metrics</c>). Labels are bounded: provider, model (priced models by name, others as one
/// <see cref="ModelLabels.Other"/>), status class, stream flag, token kind, reason — never key secrets or request ids.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "TokenRouter.Gateway";

    private readonly Counter<long> _rejections;
    private readonly Histogram<double> _pipelineDuration;
    private readonly Histogram<double> _upstreamTtfb;
    private readonly Histogram<double> _overhead;
    private readonly UpDownCounter<long> _inflight;
    private readonly Counter<long> _degradedAdmissions;
    private readonly Counter<long> _staleKeys;
    private readonly Counter<long> _deploymentFailures;
    private readonly Counter<long> _deploymentRetries;
    private readonly Counter<long> _deploymentCooldowns;
    private readonly Counter<long> _fallbacks;

    private readonly ModelLabels _models;
    private readonly MetricTallies _tallies = new();

    public GatewayMetrics(IMeterFactory meterFactory, ModelLabels models)
    {
        _models = models;
        var meter = meterFactory.Create(MeterName);
        // The counters every request adds to are observed from running totals (MetricTallies says why).
        var t = _tallies;
        meter.CreateObservableCounter("tokenrouter.requests", t.Requests, "{request}", "Chat requests handled, by provider, model, status and stream.");
        meter.CreateObservableCounter("tokenrouter.tokens", t.Tokens, "{token}", "Tokens by kind: prompt, cached_read, cache_write, completion.");
        meter.CreateObservableCounter("tokenrouter.cost", () => t.PerModel(m => Volatile.Read(ref m.Cost)), "USD", "What requests cost at the provider's list prices.");
        meter.CreateObservableCounter("tokenrouter.cache.savings", () => t.PerModel(m => Volatile.Read(ref m.CacheSavings)), "USD", "Cost at full input price minus cost.");
        meter.CreateObservableCounter("tokenrouter.dedup.savings", () => t.PerModel(m => Volatile.Read(ref m.DedupSavings)), "USD",
            "Full cost of requests served from another's in-flight response.");
        meter.CreateObservableCounter("tokenrouter.dedup.requests", () => t.PerModel(m => Volatile.Read(ref m.Deduplicated)), "{request}",
            "Requests served from another's in-flight response.");
        meter.CreateObservableCounter("tokenrouter.unpriced.requests", () => t.PerModel(m => Volatile.Read(ref m.Unpriced)), "{request}",
            "Requests for a model with no price (recorded, not billed $0).");
        _rejections = meter.CreateCounter<long>("tokenrouter.rejections", "{request}", "Requests refused by a limit or quota, by reason.");
        _pipelineDuration = meter.CreateHistogram<double>("tokenrouter.pipeline.duration", "s", "Time in the pure pipeline stages (parse to outbound bytes).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01] });
        _upstreamTtfb = meter.CreateHistogram<double>("tokenrouter.upstream.ttfb", "s", "Time from sending upstream to the provider's response headers.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _overhead = meter.CreateHistogram<double>("tokenrouter.gateway.overhead", "s", "Time the gateway adds before the request leaves for the provider.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05] });
        _inflight = meter.CreateUpDownCounter<long>("tokenrouter.requests.inflight", "{request}", "Requests being handled right now.");
        _degradedAdmissions = meter.CreateCounter<long>("tokenrouter.limits.degraded", "{request}",
            "Quota/RPM/TPM decisions taken without Redis (REDIS_OUTAGE_POLICY), by outcome.");
        _staleKeys = meter.CreateCounter<long>("tokenrouter.auth.stale", "{request}",
            "Requests authenticated from the local key cache past its TTL because Redis was unreachable.");
        meter.CreateObservableCounter("tokenrouter.deployment.requests", t.DeploymentAttempts, "{request}",
            "Upstream attempts per provider deployment, by outcome (success, failure, client_error).");
        _deploymentFailures = meter.CreateCounter<long>("tokenrouter.deployment.failures", "{request}",
            "Failed upstream attempts per deployment, by kind: connect, reset, timeout, rate_limited, server_error, auth.");
        _deploymentRetries = meter.CreateCounter<long>("tokenrouter.deployment.retries", "{request}",
            "Attempts that followed a failed one (failover to another deployment, or a retry of the same), by the deployment tried.");
        _deploymentCooldowns = meter.CreateCounter<long>("tokenrouter.deployment.cooldowns", "{event}",
            "Deployments taken out for a cool-down, by the failure kind that caused it.");
        // Per deployment, so Grafana can divide: cached ÷ input is each key's provider-cache hit ratio.
        meter.CreateObservableCounter("tokenrouter.deployment.input_tokens", () => t.PerDeployment(d => Volatile.Read(ref d.InputTokens)), "{token}",
            "Prompt tokens (cached included) served by each provider deployment.");
        meter.CreateObservableCounter("tokenrouter.deployment.cached_tokens", () => t.PerDeployment(d => Volatile.Read(ref d.CachedTokens)), "{token}",
            "Prompt tokens each provider deployment read from its cache.");
        _fallbacks = meter.CreateCounter<long>("tokenrouter.fallbacks", "{request}",
            "Requests answered by a fallback model after every deployment of the requested model failed.");
    }

    public void InflightChanged(int delta) => _inflight.Add(delta);

    public void PipelineCompleted(TimeSpan elapsed) => _pipelineDuration.Record(elapsed.TotalSeconds);

    public void UpstreamHeaders(TimeSpan elapsed, string provider) =>
        _upstreamTtfb.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("provider", provider));

    public void Overhead(TimeSpan elapsed) => _overhead.Record(elapsed.TotalSeconds);

    /// <summary>A limits decision taken during a Redis outage: admitted, rate_limited, fail_closed, quota_unknown, budget_exhausted.</summary>
    public void DegradedAdmission(string outcome) => _degradedAdmissions.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void StaleKeyServed() => _staleKeys.Add(1);

    public void DeploymentAttempt(string provider, string deployment, DeploymentOutcome outcome) =>
        Interlocked.Increment(ref _tallies.ForDeployment(provider, deployment).Attempts[(int)outcome]);

    public void DeploymentFailed(string provider, string deployment, string kind) =>
        _deploymentFailures.Add(1, new TagList { { "provider", provider }, { "deployment", deployment }, { "kind", kind } });

    public void DeploymentRetried(string provider, string deployment) =>
        _deploymentRetries.Add(1, new TagList { { "provider", provider }, { "deployment", deployment } });

    public void DeploymentCooledDown(string provider, string deployment, string? kind) =>
        _deploymentCooldowns.Add(1, new TagList { { "provider", provider }, { "deployment", deployment }, { "kind", kind ?? "unknown" } });

    public void FallbackUsed(string fromModel, string toModel) =>
        _fallbacks.Add(1, new TagList { { "from", _models.For(fromModel) }, { "to", _models.For(toModel) } });

    public void DeploymentUsage(string provider, string deployment, int inputTokens, int cachedTokens)
    {
        if (inputTokens <= 0 && cachedTokens <= 0) return;
        var tally = _tallies.ForDeployment(provider, deployment);
        if (inputTokens > 0) Interlocked.Add(ref tally.InputTokens, inputTokens);
        if (cachedTokens > 0) Interlocked.Add(ref tally.CachedTokens, cachedTokens);
    }

    public void Rejected(string reason) => _rejections.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void RequestCompleted(UsageRecord r)
    {
        var t = _tallies.For(r.Provider, _models.For(r.Model));
        Interlocked.Increment(ref t.Requests[(ModelTally.StatusIndex(r.Status) << 1) | (r.Stream ? 1 : 0)]);
        if (r.Deduplicated)
        {
            // Served from another request's call: no tokens were billed for it, only a saving was made.
            Interlocked.Increment(ref t.Deduplicated);
            if (r.DedupSavingsUsd != 0) MetricTallies.Add(ref t.DedupSavings, (double)r.DedupSavingsUsd);
            return;
        }
        var u = r.Usage;
        if (u.PromptTokens > 0) Interlocked.Add(ref t.Tokens[ModelTally.Prompt], u.PromptTokens);
        if (u.CachedReadTokens > 0) Interlocked.Add(ref t.Tokens[ModelTally.CachedRead], u.CachedReadTokens);
        if (u.CacheWriteTokens > 0) Interlocked.Add(ref t.Tokens[ModelTally.CacheWrite], u.CacheWriteTokens);
        if (u.CompletionTokens > 0) Interlocked.Add(ref t.Tokens[ModelTally.Completion], u.CompletionTokens);
        if (r.CostUsd is { } cost && cost != 0) MetricTallies.Add(ref t.Cost, (double)cost);
        if (r.CacheSavingsUsd != 0) MetricTallies.Add(ref t.CacheSavings, (double)r.CacheSavingsUsd);
        if (r.Unpriced && !u.IsEmpty) Interlocked.Increment(ref t.Unpriced);
    }
}

/// <summary>How an upstream attempt at a deployment ended (the <c>outcome</c> label of <c>tokenrouter.deployment.requests</c>).</summary>
public enum DeploymentOutcome
{
    Success,
    ClientError,
    Failure,
}
