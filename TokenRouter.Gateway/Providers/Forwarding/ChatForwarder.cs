using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Providers.Forwarding;

/// <summary>
/// The chat request path for both client APIs: authenticate, read, parse (InboundAdapter), route, run the
/// pipeline, coalesce identical in-flight requests (Dedup), forward (Proxy) and answer in the client's format.
/// The upstream call runs as a pump into an <see cref="InflightExchange"/>; every client — the leader's and each
/// follower — is a listener that reads it at its own pace, so one client leaving never cuts off another, and the
/// call is cancelled only when nobody listens. The pump meters the call whoever is still listening.
/// </summary>
public sealed partial class ChatForwarder(
    ApiKeyAuthenticator authenticator,
    ModelRouter router,
    RequestPipeline pipeline,
    OutboundAdapters adapters,
    ProviderHttpClient http,
    InflightRegistry inflight,
    AdmissionController admissions,
    PriceTable prices,
    UnpricedModelLog unpricedLog,
    IUsageSink usageSink,
    GatewayMetrics metrics,
    SelfAddress selfAddress,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider time,
    ILogger<ChatForwarder> logger,
    IDedupBroker? broker = null)
{
    public const string CostHeader = "x-tokenrouter-cost-usd";
    public const string CacheSavingsHeader = "x-tokenrouter-cache-savings-usd";
    public const string CachedTokensHeader = "x-tokenrouter-cached-tokens";
    public const string UnpricedHeader = "x-tokenrouter-unpriced";
    public const string DeduplicatedHeader = "x-tokenrouter-deduplicated";
    public const string DedupSavingsHeader = "x-tokenrouter-dedup-savings-usd";
    public const string PrefixHashHeader = "x-tokenrouter-prefix-hash";
    public const string FullHashHeader = "x-tokenrouter-full-hash";
    public const string ProviderHeader = "x-tokenrouter-provider";
    public const string RequestIdHeader = "x-request-id";

    private const int MaxResponseBytes = 64 * 1024 * 1024;

    /// <summary>What the upstream pump needs; it outlives the leader's HTTP request if followers still listen.</summary>
    private sealed record UpstreamCall(
        string RequestId, ClientIdentity Identity, RouteTarget Target, string ClientModel, bool Stream,
        PreparedRequest Prepared, Admission Admission, long Started, string? AnthropicVersion, string? AnthropicBeta);

    /// <summary>One client reading an exchange.</summary>
    private sealed record Listener(
        HttpContext Context, ApiFormat ClientFormat, string ClientModel, bool ClientWantsStreamUsage,
        ClientIdentity Identity, RouteTarget Target, string RequestId, long Started, bool Follower, bool Originator);

    public async Task<IResult> HandleAsync(HttpContext context, ApiFormat clientFormat)
    {
        var started = time.GetTimestamp();
        var requestId = "req_" + Guid.CreateVersion7().ToString("N");
        context.Response.Headers[RequestIdHeader] = requestId;
        var o = options.CurrentValue;
        metrics.InflightChanged(1);
        try
        {
            var identity = await authenticator.AuthenticateAsync(context.Request, context.RequestAborted);
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
            Request request;
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
                headers[PrefixHashHeader] = prepared.PrefixHash;
                headers[FullHashHeader] = prepared.FullHash;
                headers[ProviderHeader] = target.Provider.Name;
                request = new Request(context, clientFormat, identity, target, envelope.Model, envelope.Stream, envelope.MaxTokens,
                    envelope.ClientWantsStreamUsage, requestId, started, anthropicVersion, anthropicBeta);
            }

            // The prepared request is this handler's until a call it leads takes it over.
            var ownsPrepared = true;
            try
            {
                for (var attempt = 1; ; attempt++)
                {
                    var (exchange, listener) = await JoinOrLeadAsync(request, prepared, o);
                    if (listener.Originator) ownsPrepared = false;
                    try
                    {
                        await DeliverAsync(exchange, listener);
                        break;
                    }
                    catch (LeaderRejectedException) when (attempt < MaxJoinAttempts)
                    {
                        // The request it followed never left for the provider (its leader was refused or left): start over,
                        // under this request's own limits and quota.
                    }
                    catch (LeaderRejectedException)
                    {
                        throw new ApiError(StatusCodes.Status503ServiceUnavailable, "api_error",
                            "Identical requests kept being refused before reaching the provider; retry shortly.", "dedup_contention")
                        { RetryAfterSeconds = 1 };
                    }
                    finally
                    {
                        exchange.Leave();
                    }
                }
            }
            finally
            {
                if (ownsPrepared) prepared.Dispose();
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

    /// <summary>A request past the pipeline: what joining or leading an exchange needs of it.</summary>
    private sealed record Request(
        HttpContext Context, ApiFormat ClientFormat, ClientIdentity Identity, RouteTarget Target, string Model, bool Stream,
        int? MaxTokens, bool ClientWantsStreamUsage, string RequestId, long Started, string? AnthropicVersion, string? AnthropicBeta);

    /// <summary>How often a follower whose leader never reached the provider starts over before it fails.</summary>
    private const int MaxJoinAttempts = 3;

    /// <summary>Thrown to a follower whose exchange ended before any upstream call: its leader's refusal is not its own.</summary>
    private sealed class LeaderRejectedException : Exception;

    /// <summary>
    /// Joins the identical request in flight (follower) or leads a new one: admission (limits, worst-case quota) first,
    /// then the upstream call — here or, across replicas, wherever it already runs. A leader that is refused fails its
    /// exchange as <see cref="InflightExchange.LeaderRejected"/>, so followers start over instead of inheriting the refusal.
    /// </summary>
    private async Task<(InflightExchange, Listener)> JoinOrLeadAsync(Request r, PreparedRequest prepared, GatewayOptions o)
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
                r.AnthropicVersion, r.AnthropicBeta);
            remote = o.DedupEnabled && broker is not null && !await ClaimAcrossReplicasAsync(exchange, aborted);
            metrics.Overhead(time.GetElapsedTime(r.Started));
            if (remote) _ = FollowRemoteAsync(exchange, call);
            else _ = PumpAsync(exchange, call, registered: o.DedupEnabled);
        }
        else
        {
            // A follower costs nothing upstream: it counts against its key's request rate, takes no quota.
            try
            {
                await using var followerAdmission = await admissions.AdmitFollowerAsync(r.Identity, aborted);
            }
            catch
            {
                exchange.Leave();
                throw;
            }
        }

        System.Diagnostics.Activity.Current?.SetTag(GatewayActivity.Deduplicated, !leader || remote);
        var listener = new Listener(r.Context, r.ClientFormat, r.Model, r.ClientWantsStreamUsage, r.Identity, r.Target,
            r.RequestId, r.Started, Follower: !leader || remote, Originator: leader);
        return (exchange, listener);
    }

    // ---- Dedup across replicas ---------------------------------------------------------------------------

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
            ownCall = await broker!.FollowAsync(exchange.Key, exchange, () => PumpAsync(exchange, call, registered: true), exchange.Upstream.Token);
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

    // ---- Proxy: the upstream pump ------------------------------------------------------------------------

    private async Task PumpAsync(InflightExchange exchange, UpstreamCall call, bool registered)
    {
        var provider = call.Target.Provider;
        var adapter = adapters.For(provider.Kind);
        var usage = default(Usage);
        var status = 0;
        var estimated = false;
        exchange.ProducedLocally = true;
        using var span = GatewayActivity.Source.StartActivity("Upstream", System.Diagnostics.ActivityKind.Client);
        span?.SetTag(GatewayActivity.Provider, provider.Name);
        span?.SetTag(GatewayActivity.Model, call.Target.UpstreamModel);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(provider.BaseUri!, adapter.RequestPath))
            {
                Content = new ReadOnlyMemoryContent(call.Prepared.Body.WrittenMemory),
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            adapter.AddHeaders(request, provider);
            if (provider.Kind == ProviderKind.Anthropic)
            {
                // An Anthropic client chose the API version and betas it was written against.
                if (!string.IsNullOrEmpty(call.AnthropicVersion)) SetHeader(request, "anthropic-version", call.AnthropicVersion);
                if (!string.IsNullOrEmpty(call.AnthropicBeta)) SetHeader(request, "anthropic-beta", call.AnthropicBeta);
            }

            var cancel = exchange.Upstream.Token;
            var timeout = options.CurrentValue.ProviderResponseTimeout;
            // One deadline: the response headers first, then each read of the body (UpstreamIdleTimeout apart).
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            var idle = new IdleDeadline(deadline, cancel, options.CurrentValue.UpstreamIdleTimeout, provider.Name);
            deadline.CancelAfter(timeout);
            var sent = time.GetTimestamp();
            HttpResponseMessage response;
            try
            {
                response = await http.Invoker.SendAsync(request, deadline.Token);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                status = 499;
                exchange.Fail(new ApiError(499, "api_error", "Every client left before the provider answered."));
                return;
            }
            catch (OperationCanceledException)
            {
                status = 504;
                exchange.Fail(ApiError.GatewayTimeout($"The provider '{provider.Name}' did not answer within {timeout.TotalSeconds:0} s."));
                return;
            }
            catch (HttpRequestException ex)
            {
                status = 502;
                exchange.Fail(ApiError.BadGateway($"The provider '{provider.Name}' could not be reached ({ex.HttpRequestError})."));
                return;
            }
            metrics.UpstreamHeaders(time.GetElapsedTime(sent), provider.Name);

            using (response)
            {
                status = (int)response.StatusCode;
                var media = response.Content.Headers.ContentType?.MediaType;
                if (status >= 400) exchange.RetryAfterSeconds = UpstreamHeaders.RetryAfterSeconds(response, time);
                await using var upstream = await response.Content.ReadAsStreamAsync(cancel);
                if (status is >= 200 and <= 299 && IsEventStream(media))
                {
                    exchange.SetHead(status, media);
                    (usage, estimated) = await PumpStreamAsync(exchange, upstream, call, idle);
                    // A stream that broke, carried the provider's error or was abandoned is not a success, whatever its head said.
                    if (exchange.Error is { } failed) status = failed.Status;
                    else if (usage.IsEmpty) status = 502;
                }
                else
                {
                    using var body = await ReadBoundedAsync(upstream, response.Content.Headers.ContentLength, provider.Name, idle);
                    if (status is >= 200 and <= 299 && !TryReadUsage(adapter, body.WrittenSpan, out usage))
                    {
                        status = 502;
                        exchange.Fail(ApiError.BadGateway($"The provider '{provider.Name}' sent a response that is not valid JSON."));
                        return;
                    }
                    // A whole body is all its listeners can use: announcing the head only now, right before the body,
                    // wakes each of them once instead of once per signal.
                    exchange.SetHead(status, media);
                    exchange.Append(body.WrittenSpan);
                    exchange.Complete(usage);
                }
            }
        }
        catch (OperationCanceledException) when (exchange.Upstream.IsCancellationRequested)
        {
            // Everyone left mid-response; what the provider produced so far is still billed (estimated if needed).
            status = 499;
            if (exchange.Error is null) exchange.Fail(new ApiError(499, "api_error", "Every client left."), usage);
        }
        catch (ApiError error)
        {
            status = error.Status;
            exchange.Fail(error, usage);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            status = 502;
            exchange.Fail(ApiError.BadGateway($"The provider '{provider.Name}' broke off its response."), usage);
        }
        catch (Exception ex)
        {
            // The pump runs detached from any request: nothing may escape it unobserved.
            status = 500;
            LogPumpFailure(ex, call.RequestId);
            exchange.Fail(new ApiError(500, "api_error", "The gateway failed while relaying the provider's response."), usage);
        }
        finally
        {
            if (registered) inflight.Remove(exchange);
            if (usage.IsEmpty && exchange.Usage is { IsEmpty: false } seen) usage = seen;
            if (status == 499 && usage.IsEmpty && exchange.Stream)
            {
                usage = new Usage(call.Prepared.Body.WrittenCount / 4, 0, 0, 0, 0);
                estimated = true;
            }
            if (span is not null)
            {
                span.SetTag("http.response.status_code", status);
                span.SetTag(GatewayActivity.InputTokens, usage.PromptTokens);
                span.SetTag(GatewayActivity.CachedInputTokens, usage.CachedReadTokens);
                span.SetTag(GatewayActivity.OutputTokens, usage.CompletionTokens);
                if (status is < 200 or > 299) span.SetStatus(System.Diagnostics.ActivityStatusCode.Error);
            }
            var cost = Price(call.Target, call.ClientModel, usage);
            if (!usage.IsEmpty) call.Admission.Settle(cost.Priced ? cost.CostUsd : null, usage.TotalTokens);
            await call.Admission.DisposeAsync();
            RecordUsage(new UsageRecord
            {
                RequestId = call.RequestId,
                KeyId = call.Identity.KeyId,
                Model = call.Target.UpstreamModel,
                Provider = call.Target.Provider.Name,
                Usage = usage,
                CostUsd = cost.Priced ? cost.CostUsd : null,
                CacheSavingsUsd = cost.CacheSavingsUsd,
                Unpriced = !cost.Priced,
                Estimated = estimated,
                Stream = call.Stream,
                Status = status,
                LatencyMs = time.GetElapsedTime(call.Started).TotalMilliseconds,
                Timestamp = time.GetUtcNow(),
            });
            call.Prepared.Dispose();
            exchange.Upstream.Dispose();
        }
    }

    /// <summary>Copies the provider's stream into the exchange as it arrives, reading its usage on the way.</summary>
    private static async Task<(Usage, bool Estimated)> PumpStreamAsync(InflightExchange exchange, Stream upstream, UpstreamCall call, IdleDeadline idle)
    {
        var cancel = exchange.Upstream.Token;
        var scanner = new UsageScanner(call.Target.Provider.WireFormat);
        using var parser = new SseParser();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (true)
            {
                int n;
                try
                {
                    n = await idle.ReadAsync(upstream, buffer);
                }
                catch (ApiError timedOut)
                {
                    exchange.Fail(timedOut, scanner.Usage);
                    return (scanner.Usage, false);
                }
                catch (OperationCanceledException) when (cancel.IsCancellationRequested)
                {
                    var partial = scanner.Usage;
                    if (partial.CompletionTokens == 0)
                        partial = partial with
                        {
                            PromptTokens = partial.PromptTokens > 0 ? partial.PromptTokens : call.Prepared.Body.WrittenCount / 4,
                            CompletionTokens = scanner.Events,
                        };
                    exchange.Fail(new ApiError(499, "api_error", "Every client left."), partial);
                    return (partial, true);
                }
                if (n == 0) break;
                exchange.Append(buffer.AsSpan(0, n));
                parser.Feed(buffer.AsSpan(0, n), scanner, null!);
            }
            parser.Flush(scanner, null!);
            if (!scanner.Finished || scanner.Malformed)
            {
                var reason = scanner.Failed ? "The provider reported an error mid-stream."
                    : scanner.Malformed ? "The provider sent an event stream that is not valid JSON events."
                    : "The provider ended the stream early.";
                exchange.Fail(ApiError.BadGateway(reason), scanner.Usage);
                return (scanner.Usage, false);
            }
            exchange.Complete(scanner.Usage);
            return (scanner.Usage, false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // ---- Delivery: one client reading the exchange -------------------------------------------------------

    private async Task DeliverAsync(InflightExchange exchange, Listener l)
    {
        var aborted = l.Context.RequestAborted;
        await exchange.WaitForHeadAsync(aborted);
        if (exchange.Status == 0 && exchange.LeaderRejected && !l.Originator) throw new LeaderRejectedException();
        if (exchange.Status == 0)
        {
            if (l.Follower) RecordFollower(exchange, l, exchange.Error?.Status ?? 502);
            throw exchange.Error ?? ApiError.BadGateway("The provider gave no response.");
        }

        if (exchange.Status is < 200 or > 299)
        {
            var errorBody = await ReadAllAsync(exchange, aborted);
            if (l.Follower) RecordFollower(exchange, l, exchange.Status);
            await RelayProviderErrorAsync(l, exchange.Status, errorBody, exchange.RetryAfterSeconds);
            return;
        }

        if (IsEventStream(exchange.ContentType)) await DeliverStreamAsync(exchange, l);
        else await DeliverJsonAsync(exchange, l);
    }

    private async Task DeliverJsonAsync(InflightExchange exchange, Listener l)
    {
        var body = await ReadAllAsync(exchange, l.Context.RequestAborted);
        if (exchange.Error is { } error)
        {
            if (l.Follower) RecordFollower(exchange, l, error.Status);
            throw error;
        }

        var usage = exchange.Usage;
        var providerFormat = l.Target.Provider.WireFormat;
        using var translated = providerFormat == l.ClientFormat ? null : new PooledBufferWriter(body.Length + 512);
        if (translated is not null)
        {
            var reader = new Utf8JsonReader(body);
            using var doc = JsonDocument.ParseValue(ref reader);
            ResponseTranslator.TranslateJson(providerFormat, l.ClientFormat, doc.RootElement, usage, l.ClientModel, translated);
        }

        var headers = l.Context.Response.Headers;
        headers[CachedTokensHeader] = usage.CachedReadTokens.ToString(CultureInfo.InvariantCulture);
        var cost = Price(l.Target, l.ClientModel, usage);
        if (!cost.Priced) headers[UnpricedHeader] = "true";
        else if (l.Follower)
        {
            headers[CostHeader] = "0";
            headers[CacheSavingsHeader] = "0";
            headers[DedupSavingsHeader] = Usd(cost.CostUsd);
        }
        else
        {
            headers[CostHeader] = Usd(cost.CostUsd);
            headers[CacheSavingsHeader] = Usd(cost.CacheSavingsUsd);
        }
        if (l.Follower)
        {
            headers[DeduplicatedHeader] = "true";
            RecordFollower(exchange, l, 200);
        }

        var response = l.Context.Response;
        response.StatusCode = 200;
        response.ContentType = "application/json";
        ReadOnlyMemory<byte> payload = translated is null ? body : translated.WrittenMemory;
        response.ContentLength = payload.Length;
        await response.Body.WriteAsync(payload, l.Context.RequestAborted);
    }

    private async Task DeliverStreamAsync(InflightExchange exchange, Listener l)
    {
        var translator = StreamTranslators.Create(l.Target.Provider.WireFormat, l.ClientFormat, l.ClientWantsStreamUsage, l.ClientModel, time);
        var response = l.Context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        if (l.Follower) response.Headers[DeduplicatedHeader] = "true";
        var aborted = l.Context.RequestAborted;
        await response.StartAsync(aborted);

        var writer = response.BodyWriter;
        using var parser = new SseParser();
        var status = 200;
        try
        {
            var index = 0;
            while (true)
            {
                var count = await exchange.WaitForChunksAsync(index, aborted);
                if (count == index) break;
                for (; index < count; index++) parser.Feed(exchange.Chunk(index), translator, writer);
                if (writer.UnflushedBytes > 0) await writer.FlushAsync(aborted);
            }
            parser.Flush(translator, writer);
            if (translator.Failed) status = 502; // the provider's own error event already reached the client
            else if (exchange.Error is { } error)
            {
                status = error.Status;
                WriteStreamError(writer, l.ClientFormat, error.Status == 499 ? ApiError.BadGateway("The provider's stream was cancelled.") : error);
            }
            else if (translator.Finished) translator.Complete(writer);
            else
            {
                status = 502;
                WriteStreamError(writer, l.ClientFormat, ApiError.BadGateway("The provider ended the stream early."));
            }
            await writer.FlushAsync(aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            status = 499;
        }
        finally
        {
            if (l.Follower) RecordFollower(exchange, l, status);
        }
    }

    private static async Task<byte[]> ReadAllAsync(InflightExchange exchange, CancellationToken cancellationToken)
    {
        var index = 0;
        while (true)
        {
            var count = await exchange.WaitForChunksAsync(index, cancellationToken);
            if (count == index) break;
            index = count;
        }
        if (index == 1) return exchange.Chunk(0);
        var all = new byte[exchange.BodyBytes];
        var offset = 0;
        for (var i = 0; i < index; i++)
        {
            var chunk = exchange.Chunk(i);
            chunk.CopyTo(all, offset);
            offset += chunk.Length;
        }
        return all;
    }

    /// <summary>An error after the stream started can only be told as a final event in the client's format.</summary>
    private static void WriteStreamError(IBufferWriter<byte> writer, ApiFormat format, ApiError error)
    {
        var json = ApiErrorResult.Serialize(error, format);
        if (format == ApiFormat.Anthropic) SseWriter.WriteEvent(writer, "error"u8, json);
        else SseWriter.WriteData(writer, json);
    }

    private static async Task RelayProviderErrorAsync(Listener l, int status, byte[] body, int? retryAfterSeconds)
    {
        if (l.Target.Provider.WireFormat == l.ClientFormat && LooksLikeJson(body))
        {
            if (retryAfterSeconds is { } retry) l.Context.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
            l.Context.Response.StatusCode = status;
            l.Context.Response.ContentType = "application/json";
            await l.Context.Response.Body.WriteAsync(body, l.Context.RequestAborted);
            return;
        }
        throw ProviderErrors.FromResponse(status, body, l.Target.Provider.Name, retryAfterSeconds);
    }

    // ---- Helpers -----------------------------------------------------------------------------------------

    private static bool IsEventStream(string? media) =>
        media is not null && media.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase);

    private static bool LooksLikeJson(ReadOnlySpan<byte> body)
    {
        body = body.TrimStart(" \r\n\t"u8);
        return !body.IsEmpty && body[0] == (byte)'{';
    }

    private static bool TryReadUsage(IOutboundAdapter adapter, ReadOnlySpan<byte> body, out Usage usage)
    {
        usage = default;
        try
        {
            // One validating pass over the response; only the usage object becomes a document (not a copy of it all).
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1 || !reader.ValueTextEquals("usage"u8)) continue;
                reader.Read();
                using var u = JsonDocument.ParseValue(ref reader);
                usage = adapter.ReadUsageOf(u.RootElement);
            }
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static async Task<PooledBufferWriter> ReadBoundedAsync(Stream stream, long? contentLength, string providerName, IdleDeadline idle)
    {
        var output = new PooledBufferWriter(contentLength is { } cl and < MaxResponseBytes ? (int)cl + 1 : 16 * 1024);
        try
        {
            while (true)
            {
                var n = await idle.ReadAsync(stream, output.GetMemory(8192));
                if (n == 0) return output;
                output.Advance(n);
                if (output.WrittenCount > MaxResponseBytes)
                    throw ApiError.BadGateway($"The provider's response exceeded {MaxResponseBytes} bytes.");
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            output.Dispose();
            throw ApiError.BadGateway($"The provider '{providerName}' broke off its response.");
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    private Cost Price(RouteTarget target, string clientModel, in Usage usage)
    {
        if (prices.TryGet(target.UpstreamModel, out var price) || prices.TryGet(clientModel, out price))
            return CostCalculator.Compute(usage, price);
        unpricedLog.Report(target.UpstreamModel);
        return Cost.Unpriced;
    }

    /// <summary>A follower cost nothing upstream; what it would have cost is the dedup saving.</summary>
    private void RecordFollower(InflightExchange exchange, Listener l, int status)
    {
        // The first request here fell back to its own call after the leading replica died: the pump metered it.
        if (l.Originator && exchange.ProducedLocally) return;
        var usage = exchange.Usage;
        var cost = Price(l.Target, l.ClientModel, usage);
        RecordUsage(new UsageRecord
        {
            RequestId = l.RequestId,
            KeyId = l.Identity.KeyId,
            Model = l.Target.UpstreamModel,
            Provider = l.Target.Provider.Name,
            Usage = usage,
            CostUsd = cost.Priced ? 0 : null,
            DedupSavingsUsd = status is >= 200 and <= 299 && cost.Priced ? cost.CostUsd : 0,
            Unpriced = !cost.Priced,
            Deduplicated = true,
            Stream = exchange.Stream,
            Status = status,
            LatencyMs = time.GetElapsedTime(l.Started).TotalMilliseconds,
            Timestamp = time.GetUtcNow(),
        });
    }

    private void RecordUsage(UsageRecord record)
    {
        usageSink.Record(record);
        metrics.RequestCompleted(record);
    }

    private static string Usd(decimal value) => value.ToString("0.##########", CultureInfo.InvariantCulture);

    private static void SetHeader(HttpRequestMessage request, string name, string value)
    {
        request.Headers.Remove(name);
        request.Headers.TryAddWithoutValidation(name, value);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId} failed upstream: {Status} {Message}")]
    private partial void LogUpstreamFailure(string requestId, int status, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dedup across replicas is unavailable ({Error}); coalescing within this replica only")]
    private partial void LogDedupBrokerUnavailable(string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: following another replica's response failed")]
    private partial void LogRemoteFollowFailure(Exception exception, string requestId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId}: relaying the provider's response failed")]
    private partial void LogPumpFailure(Exception exception, string requestId);
}
