using TokenRouter.Admin.Alerts;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Apis;

// Wire shapes of /admin/webhooks. Property names go out as snake_case (see AdminExtensions).

/// <summary>Body of <c>POST /admin/webhooks</c>.</summary>
/// <param name="Url">Absolute http or https URL the alerts are POSTed to.</param>
/// <param name="Events">Events wanted (<c>budget.threshold</c>, <c>key.disabled_by_budget</c>); absent = all.</param>
/// <param name="Secret">The signing secret (16–200 characters); absent = one is generated. Shown once, in the response.</param>
public sealed record CreateWebhookRequest(string? Url, string[]? Events = null, string? Secret = null, bool? Enabled = null);

/// <summary>Body of <c>PATCH /admin/webhooks/{id}</c>: only the fields present change; <c>events: null</c> means all events.</summary>
public sealed record UpdateWebhookRequest(string? Url = null, bool? Enabled = null, string[]? Events = null);

/// <summary>A webhook as read back: never its secret.</summary>
public sealed record WebhookResponse(Guid Id, string Url, string[]? Events, bool Enabled, DateTimeOffset CreatedAt)
{
    public static WebhookResponse From(Webhook webhook) => new(webhook.Id, webhook.Url, SplitEvents(webhook.Events),
        webhook.Enabled, webhook.CreatedAt);

    internal static string[]? SplitEvents(string? events) => events?.Split(',');
}

/// <summary>The one response that carries the signing secret; it cannot be read again.</summary>
public sealed record CreatedWebhookResponse(Guid Id, string Url, string[]? Events, bool Enabled, DateTimeOffset CreatedAt, string Secret);

/// <summary>One alert's delivery to the webhook, as it stands.</summary>
public sealed record WebhookDeliveryResponse(
    Guid Id,
    string Event,
    string SubjectType,
    Guid SubjectId,
    int ThresholdPercent,
    DateTimeOffset? PeriodStart,
    string Status,
    int Attempts,
    int? LastStatusCode,
    string? LastError,
    DateTimeOffset? DeliveredAt,
    DateTimeOffset? NextAttemptAt,
    DateTimeOffset CreatedAt)
{
    public static WebhookDeliveryResponse From(WebhookDelivery d) => new(d.Id, d.Event, d.SubjectType, d.SubjectId,
        d.Threshold, d.PeriodStart, d.Status, d.Attempts, d.LastStatusCode, d.LastError, d.DeliveredAt, d.NextAttemptAt,
        d.CreatedAt);
}

internal static class WebhookEventList
{
    public static string? Join(string[]? events) => events is null ? null : string.Join(',', events.Distinct(StringComparer.Ordinal));

    public static string? Validate(string[]? events) =>
        events is null ? null
        : events.Length == 0 ? "List at least one event, or send null for all."
        : events.FirstOrDefault(e => !WebhookEvents.All.Contains(e, StringComparer.Ordinal)) is { } unknown
            ? $"Unknown event '{unknown}'. Events: {string.Join(", ", WebhookEvents.All)}."
            : null;
}
