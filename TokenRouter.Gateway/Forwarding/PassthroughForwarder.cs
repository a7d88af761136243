using System.Collections.Frozen;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Gateway.Vendors;
using Yarp.ReverseProxy.Forwarder;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Every <c>/v1/*</c> request the gateway has no endpoint of its own for (embeddings, moderations, legacy completions,
/// files, batches, Anthropic's <c>count_tokens</c>, …) is passed through to a provider unchanged: authenticate the
/// client key, pick the provider (by the JSON body's <c>model</c>, the <c>x-tokenrouter-provider</c> header, or the
/// first configured provider of the client's API format), admit it against the key's limits, forward it with the
/// provider's credentials instead of the client's, and stream the answer back as it arrives, reading its usage on the
/// way from a bounded copy — never holding bytes back from the client. YARP's <see cref="IHttpForwarder"/> does the
/// relaying (<see cref="PassthroughTransformer"/> says what crosses); its failures become client-shaped errors in
/// <see cref="Failure"/>.
/// </summary>
/// <remarks>
/// <para>No pipeline, no dedup, no translation: the body reaches the provider byte for byte, except that a routed model
/// name (<c>openai/text-embedding-3-small</c>) is rewritten to the provider's own (<c>text-embedding-3-small</c>).</para>
/// <para>Admission: concurrency limits and the key's RPM/TPM as for chat (the JSON body's size is the TPM estimate).
/// With a model, the key's quota reserves the worst case as for chat (a priced model) or $0 (an unpriced one). Without
/// a model nothing can be priced, so no quota is reserved or checked: such requests (listing or uploading files, say)
/// are rate-limited but not stopped by an exhausted quota.</para>
/// <para>Metering: every request that left for the provider gets one usage record. Tokens are read only from the answer
/// to a request that names a model (a JSON <c>usage</c> object, or the last usage event of an event stream), never from
/// Anthropic's <c>count_tokens</c> (counted, not used), and not from responses over <see cref="RelayedUsage.MaxUsageBytes"/>.</para>
/// </remarks>
public sealed partial class PassthroughForwarder(
    ModelRouter router,
    OutboundAdapters adapters,
    ProviderHttpClient http,
    IHttpForwarder forwarder,
    AdmissionController admissions,
    UsageMeter meter,
    SelfAddress selfAddress,
    DeploymentHealth health,
    DeploymentConcurrencyLimiter concurrency,
    GatewayMetrics metrics,
    IOptionsMonitor<GatewayOptions> options,
    IOptionsMonitor<RoutingOptions> routing,
    TimeProvider time,
    ILogger<PassthroughForwarder> logger)
{
    /// <summary>Request header that picks the provider by name (<c>openai</c>, <c>deepseek</c>, <c>anthropic</c>, <c>sim-openai</c>, …).</summary>
    public const string ProviderRequestHeader = GatewayHeaders.Provider;

    /// <summary>HTTP/1.1 or better, as chat sends. No activity timeout of YARP's own: the gateway's deadline covers both the
    /// wait for the headers (<c>ProviderResponseTimeout</c>) and silence in the body (<c>UpstreamIdleTimeout</c>).</summary>
    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
        ActivityTimeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>Top-level API resources used as the ledger's model label of a request that names no model (bounded).</summary>
    private static readonly FrozenSet<string> KnownResources = FrozenSet.Create(StringComparer.Ordinal,
        "assistants", "audio", "batches", "chat", "complete", "completions", "containers", "conversations", "embeddings", "evals",
        "files", "fine_tuning", "images", "messages", "models", "moderations", "organizations", "realtime", "responses",
        "skills", "threads", "uploads", "vector_stores");

    public async Task<IResult> HandleAsync(HttpContext context)
    {
        var started = time.GetTimestamp();
        var requestId = RequestIds.New(time);
        var request = context.Request;
        var format = ClientFormat.Of(request);
        var aborted = context.RequestAborted;
        context.Response.Headers[GatewayHeaders.RequestId] = requestId;
        metrics.InflightChanged(1);
        RequestBody? body = null;
        PassthroughCall? call = null;
        ConcurrencySlot? slot = null;
        try
        {
            var identity = RequestAttribution.Apply(context.ClientIdentity(), context.Request);
            var o = options.CurrentValue;
            if (request.ContentLength is { } declared && declared > o.MaxRequestBodyBytes) throw ApiError.BodyTooLarge(o.MaxRequestBodyBytes);
            UpstreamHeaders.ValidateAllowed(request);

            var json = default(PassthroughBodyFacts);
            var isJson = PassthroughBodyFacts.IsJson(request.ContentType);
            // A JSON body is read for its routing facts; a body of unknown length is read too, so the size limit holds
            // before a byte of it leaves for the provider. Only a declared length within the limit is streamed through.
            if (HasBody(context) && (isJson || request.ContentLength is null))
            {
                body = await RequestBodyReader.ReadAsync(request, o.MaxRequestBodyBytes, aborted);
                if (isJson) json = PassthroughBodyFacts.Read(body.Memory.Span);
            }

            var (provider, model) = Route(request, format, json.Model);
            if (provider.BaseUri is null) router.SetSimulatorBase(selfAddress.Resolve());
            var order = DeploymentOrder(provider, json.Model ?? request.Path.Value, identity.Scope);
            // The first deployment in order below its concurrency cap; none: the client's 429, nothing sent.
            var first = TakeSlot(order, 0, out slot);
            if (first < 0) throw ApiError.DeploymentsBusy(provider.Name);
            var deployment = order[first];
            var target = PassthroughPath.Resolve(provider, request, deployment.BaseUri);
            // YARP relays the request's body stream: one the gateway has read (and may have rewritten) is put back in its place,
            // and can be put back again for the next deployment. A body streamed through cannot: it goes to one deployment.
            // (Not a conditional expression: null would become an empty ReadOnlyMemory through byte[]'s conversion.)
            ReadOnlyMemory<byte>? replay = null;
            if (body is not null)
            {
                replay = json.Rewrite(body.Memory, model);
                ReplaceBody(request, replay.Value);
            }
            var replayable = body is not null || !HasBody(context);

            // Without a model there is nothing to price: rate and concurrency limits only (see the remarks).
            var admission = await admissions.AdmitAsync(model is null ? identity with { QuotaUsd = null } : identity, model ?? "",
                provider.Name, json.Stream, body?.Length ?? 0, json.MaxTokens, aborted);
            call = new PassthroughCall(requestId, identity, provider, deployment, target, model, json.Model, model ?? ResourceLabel(request),
                json.Stream, IsCountTokens(request), admission, started)
            { Slot = slot };
            context.Response.Headers[GatewayHeaders.Provider] = provider.Name;

            await ForwardAsync(context, call, format, replayable ? order.Count - first : 1, order, first, replay);
            return TypedResults.Empty;
        }
        catch (ApiError error) when (!context.Response.HasStarted)
        {
            call?.Status = error.Status;
            if (error.Status >= 500) LogUpstreamFailure(requestId, error.Status, error.Message);
            return new ApiErrorResult(error, format);
        }
        catch (BadHttpRequestException bad) when (!context.Response.HasStarted)
        {
            // Kestrel refused the request body (too large, malformed chunking) while it was being read.
            call?.Status = bad.StatusCode;
            return new ApiErrorResult(BadRequestError(bad, options.CurrentValue.MaxRequestBodyBytes), format);
        }
        catch (Exception) when (aborted.IsCancellationRequested)
        {
            call?.Status = 499;
            return TypedResults.Empty; // the client left
        }
        finally
        {
            // YARP has relayed the whole answer (or given up): the exchange is over.
            slot?.Dispose();
            call?.Slot?.Dispose();
            if (call is not null) await CompleteAsync(call);
            body?.Dispose();
            metrics.InflightChanged(-1);
        }
    }

    // ---- Routing -----------------------------------------------------------------------------------------

    /// <summary>The provider and the model name it knows (null when the request names none).</summary>
    private (ProviderEndpoint Provider, string? Model) Route(HttpRequest request, ApiFormat format, string? model)
    {
        var named = request.Headers[ProviderRequestHeader].ToString().Trim();
        if (named.Length > 0) return (ProviderNamed(named), model);
        if (model is not null)
        {
            var target = router.Resolve(model);
            return (target.Provider, target.UpstreamModel);
        }

        string[] preference = format == ApiFormat.Anthropic
            ? [ModelRouter.Anthropic, ModelRouter.SimAnthropic]
            : [ModelRouter.OpenAI, ModelRouter.DeepSeek, ModelRouter.SimOpenAI];
        foreach (var name in preference)
        {
            if (Find(name) is { } provider) return (provider, null);
        }
        var hint = format == ApiFormat.Anthropic ? "set ANTHROPIC_API_KEY" : "set OPENAI_API_KEY or DEEPSEEK_API_KEY";
        throw new ApiError(StatusCodes.Status400BadRequest, "invalid_request_error",
            $"The request names no model and no {(format == ApiFormat.Anthropic ? "Anthropic" : "OpenAI-format")} provider is configured on this gateway: {hint}, or pick one with the '{ProviderRequestHeader}' header.",
            "provider_not_configured");
    }

    private ProviderEndpoint ProviderNamed(string name) =>
        Find(name) ?? throw new ApiError(StatusCodes.Status400BadRequest, "invalid_request_error",
            $"The '{ProviderRequestHeader}' header names '{(name.Length > 64 ? name[..64] : name)}', which is not a provider configured on this gateway (configured: {string.Join(", ", router.Providers.Select(p => p.Name))}).",
            "provider_not_configured");

    private ProviderEndpoint? Find(string name)
    {
        foreach (var provider in router.Providers)
        {
            if (provider.Name.Equals(name, StringComparison.OrdinalIgnoreCase)) return provider;
        }
        return null;
    }

    private static string ResourceLabel(HttpRequest request)
    {
        request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase, out var rest);
        var path = rest.Value.AsSpan().TrimStart('/');
        var slash = path.IndexOf('/');
        var first = (slash < 0 ? path : path[..slash]).ToString();
        return "(" + (KnownResources.Contains(first) ? first : "other") + ")";
    }

    // ---- Proxy ---------------------------------------------------------------------------------------------

    /// <summary>
    /// Relays the call through YARP. Before any byte has gone to the client, a deployment that fails the way chat fails
    /// over (connection failure, reset, first-byte timeout, 429, 5xx, 529, 401/403) hands the request to the next one in
    /// <paramref name="order"/> (of which the first <paramref name="candidates"/> may be tried), each tried once, at most
    /// <see cref="RoutingOptions.MaxAttempts"/> in all: the body (if any) is <paramref name="replay"/>, put back for each
    /// attempt. There is no wait in between: the next deployment is another key, and chat's backoff rounds over the same
    /// deployments need a body that survives them, which only chat keeps. A deployment at its concurrency cap is skipped;
    /// with none left below it, the held-back answer is the client's.
    /// </summary>
    private async Task ForwardAsync(HttpContext context, PassthroughCall call, ApiFormat format, int candidates,
        IReadOnlyList<ProviderDeployment> order, int position, ReadOnlyMemory<byte>? replay)
    {
        var provider = call.Provider;
        var attempts = Math.Min(candidates, routing.CurrentValue.MaxAttempts);
        for (var attempt = 1; ; attempt++)
        {
            var failover = attempt < attempts;
            var (error, deadlinePassed) = await SendOnceAsync(context, call, format, failover);
            if (failover && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested
                && ShouldFailOver(call, error, deadlinePassed) && TakeSlot(order, position + 1, out var nextSlot) is var nextPosition and >= 0)
            {
                // A held-back answer has its status; no answer is counted as the gateway would have answered it.
                if (!call.HeldBack) call.Status = deadlinePassed ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway;
                ReportHealth(call);
                call.Slot?.Dispose();
                call.Slot = nextSlot;
                position = nextPosition;
                var next = order[position];
                metrics.DeploymentRetried(provider.Name, next.Id);
                call.Retarget(next, PassthroughPath.Resolve(provider, context.Request, next.BaseUri));
                context.Response.Clear();
                if (replay is { } bytes) ReplaceBody(context.Request, bytes);
                continue;
            }
            try
            {
                if (error != ForwarderError.None && Failure(context, call, error, deadlinePassed) is { } failure)
                {
                    // Nothing reached the client yet: whatever YARP began of a response gives way to an error in its shape.
                    context.Response.Clear();
                    context.Response.Headers[GatewayHeaders.RequestId] = call.RequestId;
                    context.Response.Headers[GatewayHeaders.Provider] = provider.Name;
                    throw failure;
                }
                if (call.ProviderError is { } providerError) throw providerError;
            }
            finally
            {
                if (call.Relayed is { } relayed)
                {
                    call.Usage = relayed.Finish();
                    // The provider's own error event inside a 200 stream: the request failed, whatever its head said.
                    if (relayed.Failed && call.Status is >= 200 and <= 299) call.Status = StatusCodes.Status502BadGateway;
                    relayed.Dispose();
                }
                if (call.Sent && provider.Deployments.Count > 1) ReportHealth(call);
            }
            return;
        }
    }

    /// <summary>One attempt at the call's deployment: YARP's outcome, and whether the gateway's deadline cut it.</summary>
    private async Task<(ForwarderError Error, bool DeadlinePassed)> SendOnceAsync(HttpContext context, PassthroughCall call,
        ApiFormat format, bool mayFailOver)
    {
        var aborted = context.RequestAborted;
        var provider = call.Provider;
        using var span = GatewayActivity.Source.StartActivity("Upstream", System.Diagnostics.ActivityKind.Client);
        span?.SetTag(GatewayActivity.Provider, provider.Name);
        if (call.Model is not null) span?.SetTag(GatewayActivity.Model, call.Model);
        var o = options.CurrentValue;
        using var deadline = DeadlinePool.Shared.Start(o.ProviderResponseTimeout, aborted);
        using var watch = new DeadlineWatch(deadline.Token, aborted);
        var idle = new IdleDeadline(deadline, aborted, o.UpstreamIdleTimeout, provider.Name);
        var transformer = new PassthroughTransformer(call, adapters.For(provider.Kind), format, idle, metrics, time)
        {
            HoldBackFailures = mayFailOver,
        };
        try
        {
            var error = await forwarder.SendAsync(context, call.Target.AbsoluteUri, http.Invoker, RequestConfig, transformer, deadline.Token);
            return (error, watch.TimedOut);
        }
        finally
        {
            UsageMeter.Tag(span, call.Status, call.Usage);
        }
    }

    /// <summary>Whether the attempt failed the way that sends a request to the next deployment (as chat's failover).</summary>
    private static bool ShouldFailOver(PassthroughCall call, ForwarderError error, bool deadlinePassed) =>
        call.HeldBack
        || (!call.HeadersArrived && (error is ForwarderError.Request || (error is ForwarderError.RequestTimedOut or ForwarderError.RequestCanceled && deadlinePassed)));

    /// <summary>
    /// The one place a relay failure becomes a status and an error: null when there is nobody to tell (the client left)
    /// or it is too late for an error body — then the client's connection is cut (by YARP) so a truncated answer never
    /// looks whole, and the failure is logged.
    /// </summary>
    private ApiError? Failure(HttpContext context, PassthroughCall call, ForwarderError error, bool deadlinePassed)
    {
        // YARP aborts the client's connection itself after a broken upstream body, which (asynchronously) cancels
        // RequestAborted and the deadline linked to it: a ResponseBodyDestination failure is the provider's, whatever
        // the tokens say by now (an idle cut-off is told by the ApiError inside).
        var providerBrokeOff = error == ForwarderError.ResponseBodyDestination;
        deadlinePassed &= !providerBrokeOff;
        if (error == ForwarderError.ResponseBodyClient || (!providerBrokeOff && !deadlinePassed && context.RequestAborted.IsCancellationRequested))
        {
            call.Status = 499;
            return null;
        }
        var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        var o = options.CurrentValue;
        var name = call.Provider.Name;
        var failure = FindInner<ApiError>(exception) // the idle deadline cut a read of the body
            ?? (FindInner<BadHttpRequestException>(exception) is { } bad ? BadRequestError(bad, o.MaxRequestBodyBytes) : null)
            ?? (deadlinePassed && !call.HeadersArrived ? ApiError.GatewayTimeout($"The provider '{name}' did not answer within {o.ProviderResponseTimeout.TotalSeconds:0} s.") : null)
            ?? (deadlinePassed ? ApiError.GatewayTimeout($"The provider '{name}' sent nothing for {o.UpstreamIdleTimeout.TotalSeconds:0.#} s.") : null)
            ?? (error is ForwarderError.ResponseBodyDestination or ForwarderError.ResponseBodyCanceled
                ? ApiError.BadGateway($"The provider '{name}' broke off its response.")
                : ApiError.BadGateway($"The provider '{name}' could not be reached ({FindInner<HttpRequestException>(exception)?.HttpRequestError.ToString() ?? error.ToString()})."));
        call.Status = failure.Status;
        if (!context.Response.HasStarted) return failure;
        LogUpstreamFailure(call.RequestId, failure.Status, failure.Message);
        context.Abort();
        return null;
    }

    // ---- Accounting ----------------------------------------------------------------------------------------

    private async Task CompleteAsync(PassthroughCall call)
    {
        var usage = call.Usage;
        var cost = Price(call, usage);
        if (!usage.IsEmpty) call.Admission.Settle(cost.Priced ? cost.CostUsd : null, usage.TotalTokens);
        await call.Admission.DisposeAsync();
        if (!call.Sent) return; // refused before anything left for the provider: not metered, like chat
        var record = new UsageRecord
        {
            RequestId = call.RequestId,
            KeyId = call.Identity.KeyId,
            Model = call.Label,
            Provider = call.Provider.Name,
            Usage = usage,
            CostUsd = cost.Priced ? cost.CostUsd : null,
            CacheSavingsUsd = cost.CacheSavingsUsd,
            Unpriced = !cost.Priced,
            Stream = call.Stream,
            Status = call.Status,
            LatencyMs = time.GetElapsedTime(call.Started).TotalMilliseconds,
            Timestamp = time.GetUtcNow(),
            Tags = call.Identity.Tags,
            EndUser = call.Identity.EndUser,
        };
        meter.Record(record);
    }

    /// <summary>A priced model's usage is priced as chat's; tokens nobody can price are flagged, never billed $0;
    /// a request that reported no tokens (listing files, counting tokens, no model) cost nothing the gateway meters.</summary>
    private Cost Price(PassthroughCall call, in Usage usage) =>
        usage.IsEmpty && !meter.IsPriced(call.Model, call.ClientModel) ? new Cost(0, 0, true)
        : meter.Price(call.Model ?? call.Label, call.ClientModel, usage);

    // ---- Helpers -------------------------------------------------------------------------------------------

    private static bool HasBody(HttpContext context) =>
        context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? context.Request.ContentLength > 0;

    private static void ReplaceBody(HttpRequest request, ReadOnlyMemory<byte> body)
    {
        var array = MemoryMarshal.TryGetArray(body, out var segment) ? segment : new ArraySegment<byte>(body.ToArray());
        request.Body = new MemoryStream(array.Array!, array.Offset, array.Count, writable: false);
        request.ContentLength = array.Count;
        request.Headers.TransferEncoding = default;
    }

    private static bool IsCountTokens(HttpRequest request) =>
        request.Path.Value is { } path && path.EndsWith("/count_tokens", StringComparison.OrdinalIgnoreCase);

    private static T? FindInner<T>(Exception? ex) where T : Exception
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is T found) return found;
            if (ex is AggregateException { InnerExceptions: var inner } && inner.Select(FindInner<T>).FirstOrDefault(e => e is not null) is { } nested) return nested;
        }
        return null;
    }

    private static ApiError BadRequestError(BadHttpRequestException bad, long limit) =>
        bad.StatusCode == StatusCodes.Status413PayloadTooLarge
            ? ApiError.BodyTooLarge(limit)
            : new ApiError(bad.StatusCode, "invalid_request_error", bad.Message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Passthrough request {RequestId} failed upstream: {Status} {Message}")]
    private partial void LogUpstreamFailure(string requestId, int status, string message);
}
