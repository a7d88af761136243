using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// In-flight deduplication of chat requests: a prepared request joins the identical call already running (here, or on
/// another replica through <see cref="IDedupBroker"/>) or leads a new one, and its client is then answered from that
/// call's <see cref="InflightExchange"/>. A follower whose leader was refused before reaching the provider starts
/// over under its own limits and quota, never inheriting the refusal.
/// </summary>
public sealed partial class DedupCoordinator(
    InflightRegistry inflight,
    AdmissionController admissions,
    UpstreamPump pump,
    ClientDelivery delivery,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<DedupCoordinator> logger,
    IDedupBroker? broker = null)
{
    /// <summary>
    /// A follower whose leader was refused before reaching the provider starts over at once (a new leader, or leading
    /// itself under its own limits and quota), twice at most after its first try; then it fails.
    /// </summary>
    private const int Tries = 3;

    /// <summary>Answers <paramref name="request"/>'s client from an exchange. Takes over <paramref name="prepared"/>:
    /// disposed here unless a call this request leads now owns it.</summary>
    /// <remarks>The start-over is a plain loop, not a Polly retry: it has no delay, backoff or outcome to inspect, and
    /// the pipeline's callback needed a method of its own, one more async state machine and a box for the ownership
    /// flag on every request (~0.3 KB), for the rare request that starts over.</remarks>
    public async Task ServeAsync(ChatRequest request, PreparedRequest prepared, GatewayOptions o)
    {
        // The prepared request is this handler's until a call it leads takes it over.
        var ownsPrepared = true;
        try
        {
            for (var tried = 1; ; tried++)
            {
                try
                {
                    var (exchange, listener) = await JoinOrLeadAsync(request, prepared, o);
                    if (listener.Originator) ownsPrepared = false;
                    try
                    {
                        await delivery.DeliverAsync(exchange, listener);
                    }
                    finally
                    {
                        exchange.Leave();
                    }
                    return;
                }
                catch (LeaderRejectedException) when (tried < Tries)
                {
                }
            }
        }
        catch (LeaderRejectedException)
        {
            throw new ApiError(StatusCodes.Status503ServiceUnavailable, "api_error",
                "Identical requests kept being refused before reaching the provider; retry shortly.", "dedup_contention")
            { RetryAfterSeconds = 1 };
        }
        finally
        {
            if (ownsPrepared) prepared.Dispose();
        }
    }

    /// <summary>
    /// Joins the identical request in flight (follower) or leads a new one: admission (limits, worst-case quota) first,
    /// then the upstream call — here or, across replicas, wherever it already runs. A leader that is refused fails its
    /// exchange as <see cref="InflightExchange.LeaderRejected"/>, so followers start over instead of inheriting the refusal.
    /// </summary>
    /// <remarks>A <see cref="ValueTask{T}"/>: without Redis it completes synchronously, and a Task would be allocated for
    /// its result on every request.</remarks>
    private async ValueTask<(InflightExchange, Listener)> JoinOrLeadAsync(ChatRequest r, PreparedRequest prepared, GatewayOptions o)
    {
        var aborted = r.Context.RequestAborted;
        InflightExchange exchange;
        bool leader;
        if (o.DedupEnabled) exchange = inflight.Join(prepared.FullHash, r.Stream, out leader);
        else
        {
            exchange = new InflightExchange(prepared.FullHash, r.Stream, time.GetTimestamp());
            exchange.TryListen();
            leader = true;
        }

        var remote = false;
        if (leader)
        {
            Admission admission;
            try
            {
                admission = await admissions.AdmitAsync(r.Identity, r.Target.UpstreamModel, r.Target.Provider.Name, r.Stream,
                    prepared.Body.WrittenCount, r.MaxTokens, aborted);
            }
            catch (Exception ex)
            {
                // Nobody who joined meanwhile waits forever, and nobody inherits this request's own refusal.
                exchange.Reject(ex as ApiError ?? new ApiError(499, "api_error", "The client left."));
                if (o.DedupEnabled) inflight.Remove(exchange);
                exchange.Leave();
                throw;
            }
            var call = new UpstreamCall(r.RequestId, r.Identity, r.Target, r.Model, r.Stream, prepared, admission, r.Started,
                r.AnthropicVersion, r.AnthropicBeta, r.Order, r.Routing, r.Deployments);
            remote = o.DedupEnabled && broker is not null && !await ClaimAcrossReplicasAsync(exchange, aborted);
            metrics.Overhead(time.GetElapsedTime(r.Started));
            if (remote) _ = FollowRemoteAsync(exchange, call);
            else _ = pump.RunAsync(exchange, call, registered: o.DedupEnabled);
        }
        else
        {
            // A follower costs nothing upstream: it counts against its key's request rate, takes no quota.
            try
            {
                await using var followerAdmission = await admissions.AdmitFollowerAsync(r.Identity, r.Target.UpstreamModel, aborted);
            }
            catch
            {
                exchange.Leave();
                throw;
            }
        }

        System.Diagnostics.Activity.Current?.SetTag(GatewayActivity.Deduplicated, !leader || remote);
        var listener = new Listener(r.Context, r.ClientFormat, r.Model, r.ClientWantsStreamUsage, r.Identity, r.Target,
            r.RequestId, r.Started, Follower: !leader || remote, Originator: leader, CanFallBack: r.CanFallBack);
        return (exchange, listener);
    }

    /// <summary>True when this replica leads the request across replicas (or Redis is unreachable: then it leads locally).</summary>
    private async Task<bool> ClaimAcrossReplicasAsync(InflightExchange exchange, CancellationToken cancellationToken)
    {
        try
        {
            if (!await broker!.TryClaimAsync(exchange.Key, cancellationToken)) return false;
            exchange.Mirror = broker.CreatePublisher(exchange);
            return true;
        }
        catch (Exception ex)
        {
            // Whatever went wrong across replicas (even this client leaving mid-claim), this replica leads the request
            // itself: an exchange in the registry must always get a producer, or its followers would wait forever.
            LogDedupBrokerUnavailable(ex.GetType().Name);
            return true;
        }
    }

    /// <summary>Another replica leads: relay its response, or make our own call if it dies before answering.</summary>
    private async Task FollowRemoteAsync(InflightExchange exchange, UpstreamCall call)
    {
        var ownCall = false;
        try
        {
            ownCall = await broker!.FollowAsync(exchange.Key, exchange, () => pump.RunAsync(exchange, call, registered: true), exchange.Upstream.Token);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogRemoteFollowFailure(ex, call.RequestId);
            if (exchange.Error is null && !exchange.IsCompleted) exchange.Fail(ApiError.BadGateway("The replica leading this request stopped answering."));
        }
        finally
        {
            if (!ownCall)
            {
                inflight.Remove(exchange);
                call.Prepared.Dispose();
                await call.Admission.DisposeAsync();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dedup across replicas is unavailable ({Error}); coalescing within this replica only")]
    private partial void LogDedupBrokerUnavailable(string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: following another replica's response failed")]
    private partial void LogRemoteFollowFailure(Exception exception, string requestId);
}
