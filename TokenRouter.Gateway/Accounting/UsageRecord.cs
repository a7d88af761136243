namespace TokenRouter.Gateway.Accounting;

/// <summary>One request's entry in the usage ledger.</summary>
public sealed record UsageRecord
{
    public required string RequestId { get; init; }
    public required string KeyId { get; init; }
    public required string Model { get; init; }
    public required string Provider { get; init; }
    public Usage Usage { get; init; }
    public decimal? CostUsd { get; init; }
    public decimal CacheSavingsUsd { get; init; }
    public decimal DedupSavingsUsd { get; init; }
    public bool Unpriced { get; init; }
    public bool Deduplicated { get; init; }
    /// <summary>The provider's usage never arrived (every client left mid-stream): tokens are estimated.</summary>
    public bool Estimated { get; init; }
    public bool Stream { get; init; }
    public int Status { get; init; }
    public double LatencyMs { get; init; }
    public DateTimeOffset Timestamp { get; init; }
    /// <summary>The request's tags, comma-separated (x-tokenrouter-tags, OpenAI metadata.tags).</summary>
    public string? Tags { get; init; }
    /// <summary>The client's end user (OpenAI <c>user</c>, Anthropic <c>metadata.user_id</c>).</summary>
    public string? EndUser { get; init; }
}

/// <summary>Where usage records go: in memory in embedded mode, a Redis stream drained by Admin otherwise.</summary>
public interface IUsageSink
{
    /// <summary>Must not block the request: implementations buffer and ship in the background.</summary>
    void Record(UsageRecord record);
}

/// <summary>Embedded mode's ledger: the latest records and running totals, in memory.</summary>
public sealed class InMemoryUsageSink : IUsageSink
{
    private readonly Lock _lock = new();
    private readonly Queue<UsageRecord> _recent = new();
    private const int MaxRecent = 10_000;

    public long Count { get; private set; }

    public void Record(UsageRecord record)
    {
        lock (_lock)
        {
            Count++;
            _recent.Enqueue(record);
            if (_recent.Count > MaxRecent) _recent.Dequeue();
        }
    }

    public IReadOnlyList<UsageRecord> Snapshot()
    {
        lock (_lock) return [.. _recent];
    }
}
