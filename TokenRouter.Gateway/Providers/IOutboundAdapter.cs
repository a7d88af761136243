using System.Buffers;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Providers;

/// <summary>
/// Pipeline stage OutboundAdapter: writes the envelope in one provider's wire format and reads that provider's
/// usage. One implementation per provider kind.
/// </summary>
public interface IOutboundAdapter
{
    ProviderKind Kind { get; }

    /// <summary>The request path relative to the provider's base URL, e.g. <c>chat/completions</c>.</summary>
    string RequestPath { get; }

    /// <summary>Writes the upstream request body. Streaming requests always ask the provider for usage.</summary>
    void WriteRequest(Envelope envelope, string upstreamModel, IBufferWriter<byte> output);

    /// <summary>Adds the provider's authentication (the key of the deployment called) and version headers.</summary>
    void AddHeaders(HttpRequestMessage request, string? apiKey);

    /// <summary>Reads this provider's <c>usage</c> objects (the readers live in <c>Vendors/UsageReaders/</c>).</summary>
    IUsageReader Usage { get; }
}
