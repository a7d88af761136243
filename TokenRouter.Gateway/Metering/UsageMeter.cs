using System.Diagnostics;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Metering;

/// <summary>
/// The one place a request's usage becomes money and a record: pricing (with the unpriced flag and its bounded
/// warning), the usage record's sink (ledger stream or memory), its metrics and the upstream span's tags. Chat,
/// messages, passthrough and dedup followers all meter through it.
/// </summary>
public sealed class UsageMeter(PriceTable prices, UnpricedModelLog unpricedLog, IUsageSink sink, GatewayMetrics metrics)
{
    /// <summary>Whether <paramref name="model"/> (or, failing that, the name the client asked for) has a price.</summary>
    public bool IsPriced(string? model, string? alias) =>
        (model is not null && prices.TryGet(model, out _)) || (alias is not null && prices.TryGet(alias, out _));

    /// <summary>The usage priced as <paramref name="model"/>, else as <paramref name="alias"/>; a model nobody priced is
    /// flagged <see cref="Cost.Unpriced"/>, never billed $0.</summary>
    public Cost Price(string model, string? alias, in Usage usage)
    {
        if (prices.TryGet(model, out var price) || (alias is not null && prices.TryGet(alias, out price)))
            return CostCalculator.Compute(usage, price);
        unpricedLog.Report(model);
        return Cost.Unpriced;
    }

    public void Record(UsageRecord record)
    {
        sink.Record(record);
        metrics.RequestCompleted(record);
    }

    /// <summary>The upstream attempt's outcome on its span.</summary>
    public static void Tag(Activity? span, int status, in Usage usage)
    {
        if (span is null) return;
        span.SetTag("http.response.status_code", status);
        span.SetTag(GatewayActivity.InputTokens, usage.PromptTokens);
        span.SetTag(GatewayActivity.CachedInputTokens, usage.CachedReadTokens);
        span.SetTag(GatewayActivity.OutputTokens, usage.CompletionTokens);
        if (status is < 200 or > 299) span.SetStatus(ActivityStatusCode.Error);
    }
}
