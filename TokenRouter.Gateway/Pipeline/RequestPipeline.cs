using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>The upstream request, ready to send: canonical bytes and the hashes that identify them.</summary>
public sealed class PreparedRequest(PooledBufferWriter body, string prefixHash, string fullHash) : IDisposable
{
    public PooledBufferWriter Body { get; } = body;
    public string PrefixHash { get; } = prefixHash;
    public string FullHash { get; } = fullHash;

    public void Dispose() => Body.Dispose();
}

/// <summary>
/// Runs the pure stages in order — Chunker → Arranger → Canonicalizer → Hasher (prefix) → CacheInjector →
/// OutboundAdapter → Hasher (full) — synchronously over the envelope. Each transformation has its switch so its
/// effect can be measured by turning it off.
/// </summary>
public sealed class RequestPipeline(Canonicalizer canonicalizer, Arranger arranger, OutboundAdapters adapters, IOptionsMonitor<GatewayOptions> options)
{
    public PreparedRequest Prepare(Envelope envelope, RouteTarget target, ClientIdentity identity)
    {
        var o = options.CurrentValue;
        Chunker.Chunk(envelope);
        if (o.ToolSortEnabled) arranger.Arrange(envelope, identity.Scope);
        if (o.CanonicalizeEnabled) canonicalizer.Canonicalize(envelope);
        var prefixHash = envelope.PrefixHash = Hasher.ComputePrefixHash(envelope);
        if (o.CacheInjectEnabled) CacheInjector.Inject(envelope, target.Provider.Kind, identity.Scope, o.AnthropicCacheTtl);

        var body = new PooledBufferWriter(EstimateSize(envelope));
        try
        {
            adapters.For(target.Provider.Kind).WriteRequest(envelope, target.UpstreamModel, body);
        }
        catch
        {
            body.Dispose();
            throw;
        }
        var scope = o.DedupScope == DedupScope.Global ? "global" : identity.Scope;
        return new PreparedRequest(body, prefixHash, Hasher.ComputeFullHash(body.WrittenSpan, target.Provider.Name, scope));
    }

    private static int EstimateSize(Envelope envelope) =>
        envelope.Document is null ? 4096 : Math.Max(4096, System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(envelope.Document.RootElement).Length + 1024);
}
