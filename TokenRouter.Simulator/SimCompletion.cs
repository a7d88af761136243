namespace TokenRouter.Simulator;

/// <summary>Outcome of a valid simulated call, independent of how it is written (JSON or SSE).</summary>
internal sealed class SimCompletion
{
    public required string Model { get; init; }

    public required SimReply Reply { get; init; }

    public required SimUsage Usage { get; init; }

    public bool Stream { get; init; }

    /// <summary>OpenAI/DeepSeek <c>stream_options.include_usage</c>.</summary>
    public bool IncludeUsage { get; init; }
}

/// <summary>Thrown while reading a request that the provider would reject; carries the provider's error.</summary>
internal sealed class SimRequestException(SimError error) : Exception(error.Message)
{
    public SimError Error { get; } = error;
}
