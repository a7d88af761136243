using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// The chat request path for both client APIs, top to bottom — once the <c>/v1</c> group has authenticated the client
/// (<see cref="ClientKeyAuthenticationHandler"/>): read, parse (InboundAdapter), route, run
/// the pipeline, then hand the prepared request to <see cref="DedupCoordinator"/>, which joins an identical call in
/// flight or leads one (<see cref="UpstreamPump"/>) and answers this client from it (<see cref="ClientDelivery"/>).
/// Usage is metered where it becomes known, through <see cref="Metering.UsageMeter"/>.
/// </summary>
public sealed partial class ChatHandler(
    ModelRouter router,
    RequestPipeline pipeline,
    DedupCoordinator dedup,
    IDeploymentBalancer balancer,
    DeploymentHealth health,
    DeploymentRateLimiter limiter,
    DeploymentConcurrencyLimiter concurrency,
    IOptionsMonitor<RoutingOptions> routing,
    GatewayMetrics metrics,
    SelfAddress selfAddress,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider time,
    ILogger<ChatHandler> logger)
{
    public async Task<IResult> HandleAsync(HttpContext context, ApiFormat clientFormat)
    {
        var started = time.GetTimestamp();
        var requestId = RequestIds.New(time);
        context.Response.Headers[GatewayHeaders.RequestId] = requestId;
        var o = options.CurrentValue;
        metrics.InflightChanged(1);
        try
        {
            var body = await RequestBodyReader.ReadAsync(context.Request, o.MaxRequestBodyBytes, context.RequestAborted);
            var envelope = Parse(clientFormat, body);
            ClientIdentity identity;
            try
            {
                identity = RequestAttribution.Apply(context.ClientIdentity(), context.Request, envelope.Extra);
            }
            catch
            {
                envelope.Dispose();
                throw;
            }
            var requested = envelope.Model;
            var r = routing.CurrentValue;
            // A model group is its first member with the other members as fallbacks.
            string? member = null;
            var fallbacks = r.GroupFor(requested) is { } group ? MembersFor(group, identity, out member) : r.FallbacksFor(requested);
            // Only a model with fallbacks keeps a copy of what the client sent: the fallback is prepared from it afresh.
            var original = fallbacks is null ? null : body.Memory.ToArray();
            try
            {
                var (request, prepared) = await PrepareAsync(context, clientFormat, identity, envelope, requestId, started, o,
                    canFallBack: fallbacks is not null, servedModel: member);
                await dedup.ServeAsync(request, prepared, o);
            }
            catch (FallbackRequiredException first) when (fallbacks is not null)
            {
                await ServeFallbacksAsync(context, clientFormat, identity, requested, original!, fallbacks, requestId, started, o, first);
            }
            catch (ApiError unroutable) when (member is not null && fallbacks is not null && IsUnconfigured(unroutable))
            {
                // The group's first member has no provider here (yet): the next member serves, as a fallback would.
                await ServeFallbacksAsync(context, clientFormat, identity, requested, original!, fallbacks, requestId, started, o,
                    new FallbackRequiredException(unroutable));
            }
            return TypedResults.Empty;
        }
        catch (ApiError error) when (!context.Response.HasStarted)
        {
            if (error.Status >= 500) LogUpstreamFailure(requestId, error.Status, error.Message);
            return new ApiErrorResult(error, clientFormat);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return TypedResults.Empty; // the client left
        }
        finally
        {
            metrics.InflightChanged(-1);
        }
    }

    private static Envelope Parse(ApiFormat clientFormat, RequestBody body)
    {
        try
        {
            return clientFormat == ApiFormat.Anthropic
                ? AnthropicInboundAdapter.Parse(body.Memory, body)
                : OpenAIInboundAdapter.Parse(body.Memory, body);
        }
        catch
        {
            body.Dispose();
            throw;
        }
    }

    /// <summary>Routes and rewrites the request (the envelope is this method's to dispose), and orders the provider's
    /// deployments for it.</summary>
    // A ValueTask: without Redis and with one deployment, nothing here waits, and a Task would be allocated for the result.
    private async ValueTask<(ChatRequest, PreparedRequest)> PrepareAsync(HttpContext context, ApiFormat clientFormat, ClientIdentity identity,
        Envelope envelope, string requestId, long started, GatewayOptions o, bool canFallBack, string? servedModel = null)
    {
        var keepEnvelope = false;
        try
        {
            var target = router.Resolve(servedModel ?? envelope.Model);
            if (target.Provider.BaseUri is null) router.SetSimulatorBase(selfAddress.Resolve());
            await pipeline.PrefetchAsync(envelope, identity);
            var pipelineStarted = time.GetTimestamp();
            string? anthropicVersion = null, anthropicBeta = null;
            if (clientFormat == ApiFormat.Anthropic)
            {
                // Checked whatever the route, so a header HTTP cannot carry is the client's 400, never a 502 at send.
                var version = UpstreamHeaders.ReadVisibleAscii(context.Request, "anthropic-version") ?? "";
                var beta = UpstreamHeaders.ReadVisibleAscii(context.Request, "anthropic-beta") ?? "";
                if (target.Provider.Kind == ProviderKind.Anthropic) (anthropicVersion, anthropicBeta) = (version, beta);
            }
            var prepared = pipeline.Prepare(envelope, target, identity,
                anthropicVersion is null ? null : anthropicVersion + "\n" + anthropicBeta);
            metrics.PipelineCompleted(time.GetElapsedTime(pipelineStarted));

            int[]? order = null;
            RoutingRequest? routingRequest = null;
            // One snapshot for the whole request: Admin may swap the provider's deployments meanwhile.
            var set = target.Provider.Current;
            var deployments = set.Deployments;
            if (deployments.Count == 0) throw ApiError.NoDeployment(target.Provider.Name); // Admin removed the last one just now
            if (deployments.Count > 1)
            {
                try
                {
                    // After the pipeline: the balancer reads the canonical request and its prefix hash.
                    routingRequest = new RoutingRequest(target.Provider.Name, envelope, context.Request.Headers,
                        o.DedupScope == DedupScope.Global ? "global" : identity.Scope);
                    // Cooling down, at its own RPM/TPM or at its concurrency cap: last in the order. (Its own local, so
                    // that a request to a single deployment allocates no closure.)
                    var candidates = deployments;
                    order = await balancer.OrderAsync(routingRequest, set.Infos,
                        i => health.IsAvailable(candidates[i].Id) && !limiter.IsSaturated(candidates[i].Id, candidates[i].Rpm, candidates[i].Tpm)
                            && !concurrency.IsSaturated(candidates[i].Id, candidates[i].MaxConcurrency),
                        context.RequestAborted);
                    prepared.Own(envelope);
                    keepEnvelope = true;
                }
                catch
                {
                    prepared.Dispose();
                    throw;
                }
            }

            var headers = context.Response.Headers;
            headers[GatewayHeaders.PrefixHash] = prepared.PrefixHash;
            headers[GatewayHeaders.FullHash] = prepared.FullHash;
            headers[GatewayHeaders.Provider] = target.Provider.Name;
            var request = new ChatRequest(context, clientFormat, identity, target, servedModel ?? envelope.Model, envelope.Stream, envelope.MaxTokens,
                envelope.ClientWantsStreamUsage, requestId, started, anthropicVersion, anthropicBeta, order, routingRequest, canFallBack, set);
            return (request, prepared);
        }
        finally
        {
            if (!keepEnvelope) envelope.Dispose();
        }
    }

    /// <summary>Every deployment of <paramref name="requested"/> failed before the client saw a byte: the request is
    /// prepared afresh for each fallback model in turn (its own provider, format, quota and price) until one answers.</summary>
    private async Task ServeFallbacksAsync(HttpContext context, ApiFormat clientFormat, ClientIdentity identity, string requested,
        byte[] original, string[] fallbacks, string requestId, long started, GatewayOptions o, FallbackRequiredException first)
    {
        var failure = first.Failure;
        for (var i = 0; i < fallbacks.Length; i++)
        {
            var model = fallbacks[i];
            var last = i == fallbacks.Length - 1;
            // Its own usage record: the failed call keeps the original id in the ledger.
            var fallbackId = $"{requestId}_fb{i + 1}";
            var headers = context.Response.Headers;
            headers[GatewayHeaders.RequestId] = fallbackId;
            headers[GatewayHeaders.Fallback] = model;
            System.Diagnostics.Activity.Current?.SetTag(GatewayActivity.Fallback, model);
            metrics.FallbackUsed(requested, model);
            LogFallback(requestId, requested, model, failure.Status);
            try
            {
                var envelope = clientFormat == ApiFormat.Anthropic ? AnthropicInboundAdapter.Parse(original) : OpenAIInboundAdapter.Parse(original);
                var (request, prepared) = await PrepareAsync(context, clientFormat, identity, envelope, fallbackId, started, o,
                    canFallBack: !last, servedModel: model);
                await dedup.ServeAsync(request, prepared, o);
                return;
            }
            catch (FallbackRequiredException next) when (!last)
            {
                failure = next.Failure;
            }
            catch (ApiError unroutable) when (!last && IsUnconfigured(unroutable))
            {
                // A fallback whose provider is not configured here is skipped.
            }
        }
        throw failure;
    }

    private static bool IsUnconfigured(ApiError error) =>
        error.Status == StatusCodes.Status400BadRequest && error.Code == "provider_not_configured";

    /// <summary>A group's members in order, those the key (and its team) may not use left out — the allow-list applies to
    /// the member that serves, as to a fallback; if it allows none, the first member's admission refuses the request.
    /// <paramref name="first"/> serves first; the rest are returned as its fallbacks (null: none).</summary>
    private static string[]? MembersFor(string[] group, ClientIdentity identity, out string first)
    {
        var members = identity.Models is null && identity.Team?.Models is null ? group : Array.FindAll(group, identity.MayUse);
        if (members.Length == 0) members = group;
        first = members[0];
        return members.Length > 1 ? members[1..] : null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: every deployment of {Model} failed ({Status}); falling back to {Fallback}")]
    private partial void LogFallback(string requestId, string model, string fallback, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId} failed upstream: {Status} {Message}")]
    private partial void LogUpstreamFailure(string requestId, int status, string message);
}

/// <summary>A request past the pipeline: what joining or leading an exchange and answering its client need of it.</summary>
/// <param name="Model">The model the client is answered as: the one it asked for, or the fallback that served.</param>
/// <param name="CanFallBack">A failure of every deployment is handed back (<see cref="FallbackRequiredException"/>) rather
/// than answered: a fallback model follows.</param>
public sealed record ChatRequest(
    HttpContext Context, ApiFormat ClientFormat, ClientIdentity Identity, RouteTarget Target, string Model, bool Stream,
    int? MaxTokens, bool ClientWantsStreamUsage, string RequestId, long Started, string? AnthropicVersion, string? AnthropicBeta,
    int[]? Order = null, RoutingRequest? Routing = null, bool CanFallBack = false, DeploymentSet? Deployments = null);
