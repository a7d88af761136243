using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
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
    GatewayMetrics metrics,
    SelfAddress selfAddress,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider time,
    ILogger<ChatHandler> logger)
{
    public async Task<IResult> HandleAsync(HttpContext context, ApiFormat clientFormat)
    {
        var started = time.GetTimestamp();
        var requestId = "req_" + Guid.CreateVersion7().ToString("N");
        context.Response.Headers[GatewayHeaders.RequestId] = requestId;
        var o = options.CurrentValue;
        metrics.InflightChanged(1);
        try
        {
            var identity = context.ClientIdentity();
            var body = await RequestBodyReader.ReadAsync(context.Request, o.MaxRequestBodyBytes, context.RequestAborted);
            Envelope envelope;
            try
            {
                envelope = clientFormat == ApiFormat.Anthropic
                    ? AnthropicInboundAdapter.Parse(body.Memory, body)
                    : OpenAIInboundAdapter.Parse(body.Memory, body);
            }
            catch
            {
                body.Dispose();
                throw;
            }

            PreparedRequest prepared;
            ChatRequest request;
            using (envelope)
            {
                var target = router.Resolve(envelope.Model);
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
                prepared = pipeline.Prepare(envelope, target, identity,
                    anthropicVersion is null ? null : anthropicVersion + "\n" + anthropicBeta);
                metrics.PipelineCompleted(time.GetElapsedTime(pipelineStarted));

                var headers = context.Response.Headers;
                headers[GatewayHeaders.PrefixHash] = prepared.PrefixHash;
                headers[GatewayHeaders.FullHash] = prepared.FullHash;
                headers[GatewayHeaders.Provider] = target.Provider.Name;
                request = new ChatRequest(context, clientFormat, identity, target, envelope.Model, envelope.Stream, envelope.MaxTokens,
                    envelope.ClientWantsStreamUsage, requestId, started, anthropicVersion, anthropicBeta);
            }

            await dedup.ServeAsync(request, prepared, o);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId} failed upstream: {Status} {Message}")]
    private partial void LogUpstreamFailure(string requestId, int status, string message);
}

/// <summary>A request past the pipeline: what joining or leading an exchange and answering its client need of it.</summary>
public sealed record ChatRequest(
    HttpContext Context, ApiFormat ClientFormat, ClientIdentity Identity, RouteTarget Target, string Model, bool Stream,
    int? MaxTokens, bool ClientWantsStreamUsage, string RequestId, long Started, string? AnthropicVersion, string? AnthropicBeta);
