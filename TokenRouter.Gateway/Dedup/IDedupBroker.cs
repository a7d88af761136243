using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// Coalescing across gateway replicas. Within a process the <see cref="InflightRegistry"/> decides who leads;
/// across processes the broker does: one replica claims a FullHash, mirrors its upstream response to the others,
/// and the others feed their local exchange from that mirror instead of calling the provider.
/// </summary>
public interface IDedupBroker
{
    /// <summary>Claims the cross-replica lead for <paramref name="key"/>; false when another replica leads it now.</summary>
    Task<bool> TryClaimAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// The leader's mirror for the <paramref name="exchange"/> it just claimed: everything the upstream pump writes to the
    /// exchange is published for other replicas. The mirror may listen to the exchange itself so that the upstream call
    /// outlives this replica's own clients while other replicas still relay it.
    /// </summary>
    IExchangeMirror CreatePublisher(InflightExchange exchange);

    /// <summary>
    /// Feeds <paramref name="exchange"/> from the replica that leads <paramref name="key"/> until its response ends.
    /// If that replica stops publishing (it died) before this exchange got any byte, waits a bounded time and then
    /// calls <paramref name="ownCall"/> — this replica's own upstream call into the same exchange — and returns true;
    /// if it dies mid-response, fails the exchange with a 502. Returns false when the remote response was relayed.
    /// </summary>
    Task<bool> FollowAsync(string key, InflightExchange exchange, Func<Task> ownCall, CancellationToken cancellationToken);
}

/// <summary>Receives a copy of what an exchange's producer writes (see <see cref="InflightExchange.Mirror"/>).</summary>
public interface IExchangeMirror
{
    void Head(int status, string? contentType);
    void Chunk(ReadOnlySpan<byte> bytes);
    void Complete(Usage usage);
    void Fail(ApiError error, Usage usage);
}
