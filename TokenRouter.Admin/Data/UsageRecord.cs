namespace TokenRouter.Admin.Data;

/// <summary>One gateway request in the usage ledger. The request id is the key, so replaying the stream is idempotent.</summary>
public sealed class UsageRecord
{
    public required string RequestId { get; set; }

    /// <summary>Null for keys that come from configuration (<c>TOKENROUTER_API_KEYS</c>) rather than Admin.</summary>
    public Guid? ApiKeyId { get; set; }
    public required string Model { get; set; }
    public required string Provider { get; set; }
    public int PromptTokens { get; set; }
    public int CachedReadTokens { get; set; }
    public int CacheWrite5mTokens { get; set; }
    public int CacheWrite1hTokens { get; set; }
    public int CompletionTokens { get; set; }

    /// <summary>Null when the model has no price (<see cref="Unpriced"/>): never silently billed as $0.</summary>
    public decimal? CostUsd { get; set; }
    public decimal CacheSavingsUsd { get; set; }
    public decimal DedupSavingsUsd { get; set; }
    public bool Unpriced { get; set; }
    public bool Deduplicated { get; set; }

    /// <summary>The provider's usage never arrived (every client left mid-stream), so the gateway estimated the tokens.</summary>
    public bool Estimated { get; set; }
    public bool Stream { get; set; }
    public int Status { get; set; }
    public int LatencyMs { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The request's tags, comma-separated (<c>x-tokenrouter-tags</c>, OpenAI <c>metadata.tags</c>); null when none.
    /// Kept as text, not text[], so a batch still inserts with one unnest() of flat arrays.</summary>
    public string? Tags { get; set; }

    /// <summary>The client's end user (OpenAI <c>user</c>, Anthropic <c>metadata.user_id</c>); null when none.</summary>
    public string? EndUser { get; set; }

    // The gateway sends at most 16 tags of 64 characters and cuts end users at 256 (Metering/RequestAttribution).
    public const int MaxTagsLength = 16 * 65, MaxEndUserLength = 256;
}
