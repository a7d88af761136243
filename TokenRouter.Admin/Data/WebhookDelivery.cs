namespace TokenRouter.Admin.Data;

/// <summary>
/// One alert to one webhook: the outbox row the delivery worker sends, retries and records. The body is fixed when the
/// row is written, so every attempt (and a replica that resumes it after a restart) sends the same bytes.
/// </summary>
public sealed class WebhookDelivery
{
    public const string Pending = "pending", Delivered = "delivered", Failed = "failed";

    public Guid Id { get; set; }
    public Guid WebhookId { get; set; }
    public Guid AlertId { get; set; }
    public required string Event { get; set; }
    public required string SubjectType { get; set; }
    public Guid SubjectId { get; set; }
    public int Threshold { get; set; }
    public DateTimeOffset? PeriodStart { get; set; }

    /// <summary>The JSON body sent.</summary>
    public required string Payload { get; set; }

    /// <summary><see cref="Pending"/>, <see cref="Delivered"/> or <see cref="Failed"/> (gave up after the last attempt).</summary>
    public required string Status { get; set; }
    public int Attempts { get; set; }
    public int? LastStatusCode { get; set; }
    public string? LastError { get; set; }

    /// <summary>When the next attempt is due (null once delivered or given up).</summary>
    public DateTimeOffset? NextAttemptAt { get; set; }

    /// <summary>A replica working on the row holds it until then; a crash lets another replica (or a restart) resume it.</summary>
    public DateTimeOffset? LockedUntil { get; set; }
    public DateTimeOffset? DeliveredAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
