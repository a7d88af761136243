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

    private readonly Counter<long> _requests;
    private readonly Counter<long> _tokens;
    private readonly Counter<double> _cost;
    private readonly Counter<double> _cacheSavings;
    private readonly Counter<double> _dedupSavings;
    private readonly Counter<long> _deduplicated;
    private readonly Counter<long> _unpriced;
    private readonly Counter<long> _rejections;
    private readonly Histogram<double> _pipelineDuration;
    private readonly Histogram<double> _upstreamTtfb;
    private readonly Histogram<double> _overhead;
    private readonly UpDownCounter<long> _inflight;
    private readonly Counter<long> _degradedAdmissions;
    private readonly Counter<long> _staleKeys;
    private readonly Counter<long> _deploymentAttempts;
    private readonly Counter<long> _deploymentFailures;
    private readonly Counter<long> _deploymentRetries;
    private readonly Counter<long> _deploymentCooldowns;
    private readonly Counter<long> _fallbacks;
    private readonly Counter<long> _deploymentInputTokens;
    private readonly Counter<long> _deploymentCachedTokens;

    private readonly ModelLabels _models;

    public GatewayMetrics(IMeterFactory meterFactory, ModelLabels models)
    {
        _models = models;
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("tokenrouter.requests", "{request}", "Chat requests handled, by provider, model, status and stream.");
        _tokens = meter.CreateCounter<long>("tokenrouter.tokens", "{token}", "Tokens by kind: prompt, cached_read, cache_write, completion.");
        _cost = meter.CreateCounter<double>("tokenrouter.cost", "USD", "What requests cost at the provider's list prices.");
        _cacheSavings = meter.CreateCounter<double>("tokenrouter.cache.savings", "USD", "Cost at full input price minus cost.");
        _dedupSavings = meter.CreateCounter<double>("tokenrouter.dedup.savings", "USD", "Full cost of requests served from another's in-flight response.");
        _deduplicated = meter.CreateCounter<long>("tokenrouter.dedup.requests", "{request}", "Requests served from another's in-flight response.");
        _unpriced = meter.CreateCounter<long>("tokenrouter.unpriced.requests", "{request}", "Requests for a model with no price (recorded, not billed $0).");
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
        _deploymentAttempts = meter.CreateCounter<long>("tokenrouter.deployment.requests", "{request}",
            "Upstream attempts per provider deployment, by outcome (success, failure, client_error).");
        _deploymentFailures = meter.CreateCounter<long>("tokenrouter.deployment.failures", "{request}",
            "Failed upstream attempts per deployment, by kind: connect, reset, timeout, rate_limited, server_error, auth.");
        _deploymentRetries = meter.CreateCounter<long>("tokenrouter.deployment.retries", "{request}",
            "Attempts that followed a failed one (failover to another deployment, or a retry of the same), by the deployment tried.");
        _deploymentCooldowns = meter.CreateCounter<long>("tokenrouter.deployment.cooldowns", "{event}",
            "Deployments taken out for a cool-down, by the failure kind that caused it.");
        // Per deployment, so Grafana can divide: cached ÷ input is each key's provider-cache hit ratio.
        _deploymentInputTokens = meter.CreateCounter<long>("tokenrouter.deployment.input_tokens", "{token}",
            "Prompt tokens (cached included) served by each provider deployment.");
        _deploymentCachedTokens = meter.CreateCounter<long>("tokenrouter.deployment.cached_tokens", "{token}",
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

    public void DeploymentAttempt(string provider, string deployment, string outcome) =>
        _deploymentAttempts.Add(1, new TagList { { "provider", provider }, { "deployment", deployment }, { "outcome", outcome } });

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
        var tags = new TagList { { "provider", provider }, { "deployment", deployment } };
        if (inputTokens > 0) _deploymentInputTokens.Add(inputTokens, tags);
        if (cachedTokens > 0) _deploymentCachedTokens.Add(cachedTokens, tags);
    }

    public void Rejected(string reason) => _rejections.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void RequestCompleted(UsageRecord r)
    {
        var modelLabel = _models.For(r.Model);
        var tags = new TagList
        {
            { "provider", r.Provider },
            { "model", modelLabel },
            { "status", StatusClass(r.Status) },
            { "stream", r.Stream ? "true" : "false" },
        };
        _requests.Add(1, tags);

        var model = new TagList { { "provider", r.Provider }, { "model", modelLabel } };
        if (r.Deduplicated)
        {
            // Served from another request's call: no tokens were billed for it, only a saving was made.
            _deduplicated.Add(1, model);
            if (r.DedupSavingsUsd != 0) _dedupSavings.Add((double)r.DedupSavingsUsd, model);
            return;
        }
        var u = r.Usage;
        if (u.PromptTokens > 0) _tokens.Add(u.PromptTokens, Kind(model, "prompt"));
        if (u.CachedReadTokens > 0) _tokens.Add(u.CachedReadTokens, Kind(model, "cached_read"));
        if (u.CacheWriteTokens > 0) _tokens.Add(u.CacheWriteTokens, Kind(model, "cache_write"));
        if (u.CompletionTokens > 0) _tokens.Add(u.CompletionTokens, Kind(model, "completion"));
        if (r.CostUsd is { } cost && cost != 0) _cost.Add((double)cost, model);
        if (r.CacheSavingsUsd != 0) _cacheSavings.Add((double)r.CacheSavingsUsd, model);
        if (r.Unpriced && !u.IsEmpty) _unpriced.Add(1, model);
    }

    private static TagList Kind(TagList model, string kind)
    {
        var tags = model;
        tags.Add("kind", kind);
        return tags;
    }

    private static string StatusClass(int status) => status switch
    {
        >= 200 and < 300 => "2xx",
        499 => "499",
        >= 400 and < 500 => "4xx",
        _ => "5xx",
    };
}
