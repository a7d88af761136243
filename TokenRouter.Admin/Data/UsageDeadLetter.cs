namespace TokenRouter.Admin.Data;

/// <summary>
/// A usage stream entry the ledger could not store (missing or unreadable fields). Parked in the same transaction as
/// the good entries of its batch, so acknowledging the batch never loses it; an operator can inspect and replay it.
/// </summary>
public sealed class UsageDeadLetter
{
    /// <summary>The Redis stream entry id (<c>{ms}-{seq}</c>): unique, so parking the same entry twice is a no-op.</summary>
    public required string StreamId { get; set; }

    /// <summary>The entry's request id when it had a readable one.</summary>
    public string? RequestId { get; set; }
    public required string Reason { get; set; }

    /// <summary>The entry's fields as a JSON object of strings, exactly as read from the stream.</summary>
    public required string Fields { get; set; }
    public DateTimeOffset ReceivedAt { get; set; }
}
