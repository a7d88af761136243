using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Providers;

public enum ProviderKind
{
    OpenAI,
    DeepSeek,
    Anthropic,
}

/// <summary>A configured upstream: where it is, what it speaks, and how to authenticate to it.</summary>
public sealed class ProviderEndpoint
{
    public required string Name { get; init; }
    public required ProviderKind Kind { get; init; }
    /// <summary>Base URL as the official SDKs take it (OpenAI's includes <c>/v1</c>, Anthropic's does not).
    /// Null for the simulator until the gateway knows its own address.</summary>
    public Uri? BaseUri { get; set; }
    public string? ApiKey { get; init; }
    public bool IsSimulator { get; init; }

    public ApiFormat WireFormat => Kind == ProviderKind.Anthropic ? ApiFormat.Anthropic : ApiFormat.OpenAI;

    public override string ToString() => Name;
}

/// <summary>Where a request goes: a provider and the model name it knows.</summary>
public readonly record struct RouteTarget(ProviderEndpoint Provider, string UpstreamModel);
