using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Routing;

/// <summary>One deployment of a provider as the balancer sees it: no key, no URL, only what ordering needs.</summary>
/// <param name="Id">Stable across replicas and restarts (configured name, or derived from the key's hash — never the key).</param>
/// <param name="Weight">Relative share of new conversations (rendezvous weight), &gt; 0.</param>
/// <param name="CacheGroup">Deployments that share a provider cache (keys of one organisation); null = its own.</param>
public sealed record DeploymentInfo(string Id, double Weight = 1, string? CacheGroup = null);

/// <summary>What the balancer may read of a request to keep conversations on the deployment whose cache is warm.</summary>
/// <param name="Provider">The provider name the request resolved to (ModelRouter).</param>
/// <param name="Envelope">The request after the pipeline stages (canonical order, cache breakpoints placed).</param>
/// <param name="Headers">The client's request headers (session ids coding agents send).</param>
/// <param name="Scope">The tenant scope (client key scope, or "global" under DEDUP_SCOPE=Global): pins never cross it.</param>
public sealed record RoutingRequest(string Provider, Envelope Envelope, IHeaderDictionary Headers, string Scope);

/// <summary>
/// Orders a provider's deployments for one request: the first is where its prefix cache is warm (or, for a new
/// conversation, its weighted rendezvous choice); the rest are the failover order (same cache group first).
/// </summary>
public interface IDeploymentBalancer
{
    /// <summary>Indexes into <paramref name="deployments"/>, best first, every index exactly once. Deployments for which
    /// <paramref name="isAvailable"/> is false (cooling down, saturated) go last, in the same relative order.</summary>
    ValueTask<int[]> OrderAsync(RoutingRequest request, IReadOnlyList<DeploymentInfo> deployments, Func<int, bool> isAvailable,
        CancellationToken cancellationToken);

    /// <summary>The request was served by <paramref name="deployment"/> (after failover, maybe not the first choice):
    /// its prefixes now live in that deployment's cache; the balancer pins them there for the provider's cache TTL.</summary>
    ValueTask ServedAsync(RoutingRequest request, DeploymentInfo deployment, CancellationToken cancellationToken);
}
