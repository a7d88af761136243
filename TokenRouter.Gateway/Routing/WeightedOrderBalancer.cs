using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// The default <see cref="IDeploymentBalancer"/>: weighted rendezvous hashing over the request's scope and prefix hash, so
/// one conversation prefix keeps landing on one deployment (its cache stays warm) while many prefixes spread in
/// proportion to the weights; deployments that are not available go last. It remembers nothing
/// (<see cref="ServedAsync"/> does nothing); the cache-aware balancer replaces it.
/// </summary>
public sealed class WeightedOrderBalancer : IDeploymentBalancer
{
    public ValueTask<int[]> OrderAsync(RoutingRequest request, IReadOnlyList<DeploymentInfo> deployments, Func<int, bool> isAvailable,
        CancellationToken cancellationToken) =>
        ValueTask.FromResult(Order(request.Scope, request.Envelope.PrefixHash, deployments, isAvailable));

    public ValueTask ServedAsync(RoutingRequest request, DeploymentInfo deployment, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Indexes best first: available before unavailable, each group by descending weighted rendezvous score.</summary>
    public static int[] Order(string scope, string? prefixHash, IReadOnlyList<DeploymentInfo> deployments, Func<int, bool> isAvailable)
    {
        var n = deployments.Count;
        var order = new int[n];
        if (n == 0) return order;
        var seed = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(scope.AsSpan()))
            ^ XxHash3.HashToUInt64(MemoryMarshal.AsBytes((prefixHash ?? "").AsSpan()), unchecked((long)0x9E3779B97F4A7C15));
        Span<double> scores = n <= 64 ? stackalloc double[n] : new double[n];
        for (var i = 0; i < n; i++)
        {
            order[i] = i;
            var d = deployments[i];
            var h = XxHash3.HashToUInt64(MemoryMarshal.AsBytes(d.Id.AsSpan()), (long)seed);
            // A uniform draw in (0, 1); weight / -ln(u) is the weighted rendezvous score (highest wins).
            var u = ((h >> 11) + 0.5) / (1UL << 53);
            scores[i] = d.Weight / -Math.Log(u);
            if (!isAvailable(i)) scores[i] = -1 / scores[i]; // negative: after every available one, in the same relative order
        }
        // Insertion sort: a provider has a handful of deployments.
        for (var i = 1; i < n; i++)
        {
            var index = order[i];
            var score = scores[i];
            var j = i - 1;
            for (; j >= 0 && scores[j] < score; j--)
            {
                scores[j + 1] = scores[j];
                order[j + 1] = order[j];
            }
            scores[j + 1] = score;
            order[j + 1] = index;
        }
        return order;
    }
}
