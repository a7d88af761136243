using System.Diagnostics;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Gateway.Vendors;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>The upstream request, ready to send: canonical bytes and the hashes that identify them.</summary>
public sealed class PreparedRequest(PooledBufferWriter body, string prefixHash, string fullHash) : IDisposable
{
    public PooledBufferWriter Body { get; } = body;
    public string PrefixHash { get; } = prefixHash;
    public string FullHash { get; } = fullHash;

    private IDisposable? _owned;

    /// <summary>Keeps <paramref name="owned"/> (the parsed request, which deployment balancing still reads) alive until
    /// <see cref="ReleaseOwned"/> or disposal.</summary>
    public void Own(IDisposable owned) => _owned = owned;

    public void ReleaseOwned() => Interlocked.Exchange(ref _owned, null)?.Dispose();

    public void Dispose()
    {
        ReleaseOwned();
        Body.Dispose();
    }
}

/// <summary>
/// Runs the pure stages in order — Chunker → Arranger → Canonicalizer → Hasher (prefix) → CacheInjector →
/// OutboundAdapter → Hasher (full) — synchronously over the envelope. Each transformation has its switch so its
/// effect can be measured by turning it off.
/// </summary>
public sealed class RequestPipeline(Canonicalizer canonicalizer, Arranger arranger, OutboundAdapters adapters, IOptionsMonitor<GatewayOptions> options,
    ToolOrderMemory? toolOrders = null)
{
    /// <summary>Fetches shared state the synchronous stages need (a conversation's tool order from other replicas).</summary>
    public ValueTask PrefetchAsync(Envelope envelope, ClientIdentity identity) =>
        toolOrders is not null && envelope.Tools.Count > 0 && options.CurrentValue.ToolSortEnabled
            ? toolOrders.PrefetchAsync(Arranger.ConversationRoot(envelope, identity.Scope))
            : ValueTask.CompletedTask;

    /// <param name="forwardedHeaders">Headers passed on to the provider that change its answer (Anthropic's version and
    /// betas): part of the FullHash, so requests that differ only there never share a response.</param>
    public PreparedRequest Prepare(Envelope envelope, RouteTarget target, ClientIdentity identity, string? forwardedHeaders = null)
    {
        var o = options.CurrentValue;
        // The dedup scope is also the prompt_cache_key's tenant: with a global scope, identical requests from two keys
        // must be byte-identical (one FullHash) and share one provider cache route.
        var scope = o.DedupScope == DedupScope.Global ? "global" : identity.Scope;
        using (Stage("Chunker")) Chunker.Chunk(envelope);
        if (o.ToolSortEnabled)
        {
            using (Stage("Arranger")) arranger.Arrange(envelope, identity.Scope);
        }
        if (o.CanonicalizeEnabled)
        {
            using (Stage("Canonicalizer")) canonicalizer.Canonicalize(envelope);
        }
        string prefixHash;
        using (var hashing = Stage("Hasher.Prefix"))
        {
            prefixHash = envelope.PrefixHash = Hasher.ComputePrefixHash(envelope);
            hashing?.SetTag(GatewayActivity.PrefixHash, prefixHash);
        }
        if (o.CacheInjectEnabled)
        {
            using (Stage("CacheInjector")) CacheInjector.Inject(envelope, target.Provider.Kind, scope, o.AnthropicCacheTtl);
        }

        var body = new PooledBufferWriter(EstimateSize(envelope));
        try
        {
            using (Stage("OutboundAdapter")) adapters.For(target.Provider.Kind).WriteRequest(envelope, target.UpstreamModel, body);
        }
        catch
        {
            body.Dispose();
            throw;
        }
        string fullHash;
        using (Stage("Hasher.Full")) fullHash = Hasher.ComputeFullHash(body.WrittenSpan, forwardedHeaders is null ? target.Provider.Name : target.Provider.Name + "\n" + forwardedHeaders, scope);
        if (Activity.Current is { } request)
        {
            request.SetTag(GatewayActivity.Model, envelope.Model);
            request.SetTag(GatewayActivity.Provider, target.Provider.Name);
            request.SetTag(GatewayActivity.PrefixHash, prefixHash);
            request.SetTag(GatewayActivity.FullHash, fullHash);
        }
        return new PreparedRequest(body, prefixHash, fullHash);
    }

    /// <summary>A child span for one stage; null (and free) when nobody is tracing.</summary>
    private static Activity? Stage(string name) => GatewayActivity.Source.StartActivity(name, ActivityKind.Internal);

    private static int EstimateSize(Envelope envelope) =>
        envelope.Document is null ? 4096 : Math.Max(4096, System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(envelope.Document.RootElement).Length + 1024);
}
