using System.Net;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Gateway.Vendors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// The upstream call of a chat request (Proxy): sends the prepared bytes over the pooled handler and pumps the
/// provider's answer — its head, then the JSON body or each stream chunk as it arrives — into an
/// <see cref="InflightExchange"/> that every listening client reads at its own pace. Cancelled only when nobody
/// listens; gives up on a provider gone silent (<see cref="IdleDeadline"/>); meters the call in every case.
/// </summary>
public sealed partial class UpstreamPump(
    OutboundAdapters adapters,
    UpstreamFailover failover,
    IDeploymentBalancer balancer,
    InflightRegistry inflight,
    UsageMeter meter,
    DeploymentRateLimiter limiter,
    GatewayMetrics metrics,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider time,
    ILogger<UpstreamPump> logger)
{
    private const int MaxResponseBytes = 64 * 1024 * 1024;

    // Made once: a local function capturing the call cost every request a closure and a delegate.
    private readonly Func<ProviderDeployment, UpstreamCall, HttpRequestMessage> _createRequest = (deployment, call) =>
        CreateRequest(adapters.For(call.Target.Provider.Kind), deployment, call);

    /// <summary>The call's request to <paramref name="deployment"/> (once per attempt: a request cannot be sent twice).</summary>
    private static HttpRequestMessage CreateRequest(IOutboundAdapter adapter, ProviderDeployment deployment, UpstreamCall call)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, deployment.Resolve(adapter.RequestPath))
        {
            Content = new ReadOnlyMemoryContent(call.Prepared.Body.WrittenMemory),
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
        };
        // As text: sent as is, without a MediaTypeHeaderValue parsed and built per request.
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        adapter.AddHeaders(request, deployment.ApiKey);
        if (call.Target.Provider.Kind == ProviderKind.Anthropic)
        {
            // An Anthropic client chose the API version and betas it was written against.
            if (!string.IsNullOrEmpty(call.AnthropicVersion)) SetHeader(request, "anthropic-version", call.AnthropicVersion);
            if (!string.IsNullOrEmpty(call.AnthropicBeta)) SetHeader(request, "anthropic-beta", call.AnthropicBeta);
        }
        return request;
    }

    /// <summary>Makes the call and writes the provider's answer into <paramref name="exchange"/>, metering it whoever
    /// is still listening. Runs detached from any client request, so nothing may escape it.</summary>
    public async Task RunAsync(InflightExchange exchange, UpstreamCall call, bool registered)
    {
        var provider = call.Target.Provider;
        var adapter = adapters.For(provider.Kind);
        var usage = default(Usage);
        var status = 0;
        var estimated = false;
        ProviderDeployment? served = null;
        ConcurrencySlot? slot = null;
        exchange.ProducedLocally = true;
        using var span = GatewayActivity.Source.StartActivity("Upstream", System.Diagnostics.ActivityKind.Client);
        span?.SetTag(GatewayActivity.Provider, provider.Name);
        span?.SetTag(GatewayActivity.Model, call.Target.UpstreamModel);
        try
        {
            var cancel = exchange.Upstream.Token;
            var timeout = options.CurrentValue.ProviderResponseTimeout;
            UpstreamAnswer answer;
            try
            {
                answer = await failover.SendAsync(call, _createRequest, cancel);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                status = 499;
                exchange.Fail(new ApiError(499, "api_error", "Every client left before the provider answered."));
                return;
            }
            // Held until the exchange ends below (a stream: its last chunk, or everyone leaving), whatever happens.
            slot = answer.Slot;
            span?.SetTag(GatewayActivity.Deployment, answer.Deployment.Id);
            span?.SetTag(GatewayActivity.Attempt, answer.Attempts);
            if (answer.Response is null && answer.Failure == FailureKind.Saturated)
            {
                // Every deployment is at its own RPM/TPM or concurrency cap: the client's 429, in its format, with when to come
                // back (a request in flight may end any moment; a minute window only at its end).
                status = StatusCodes.Status429TooManyRequests;
                exchange.Fail(answer.Busy ? ApiError.DeploymentsBusy(provider.Name) : ApiError.DeploymentsAtRateLimit(provider.Name, limiter.RetryAfterSeconds));
                return;
            }
            if (answer.Response is null)
            {
                (status, var failure) = answer.Failure == FailureKind.Timeout
                    ? (504, ApiError.GatewayTimeout($"The provider '{provider.Name}' did not answer within {timeout.TotalSeconds:0.#} s."))
                    : (502, ApiError.BadGateway($"The provider '{provider.Name}' could not be reached ({(answer.Failure == FailureKind.Reset ? "connection reset" : "connection failed")})."));
                exchange.Fail(failure);
                return;
            }
            served = answer.Deployment;
            using var request = answer.Request;
            // One deadline: the response headers first, then each read of the body (UpstreamIdleTimeout apart).
            using var deadline = answer.Deadline!;
            var idle = new IdleDeadline(deadline, cancel, options.CurrentValue.UpstreamIdleTimeout, provider.Name);
            var response = answer.Response;
            if ((int)response.StatusCode is >= 200 and <= 299 && call.Routing is { } routing)
            {
                // Its prefixes now live in this deployment's cache; the envelope is not needed after that.
                await balancer.ServedAsync(routing, answer.Deployment.Info, cancel);
                call.Prepared.ReleaseOwned();
            }

            using (response)
            {
                status = (int)response.StatusCode;
                var media = UpstreamHeaders.MediaType(response.Content);
                if (status >= 400) exchange.RetryAfterSeconds = UpstreamHeaders.RetryAfterSeconds(response, time);
                // SocketsHttpHandler's content has its stream at hand: the synchronous call returns it without a Task.
                await using var upstream = response.Content.ReadAsStream(cancel);
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
                    if (status is >= 200 and <= 299 && !adapter.Usage.TryRead(body.WrittenSpan, out usage))
                    {
                        status = 502;
                        exchange.Fail(ApiError.BadGateway($"The provider '{provider.Name}' sent a response that is not valid JSON."));
                        return;
                    }
                    // A whole body is all its listeners can use: head, body and completion published at once wake
                    // each of them once instead of once per part.
                    exchange.Respond(status, media, body, usage);
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
            slot?.Dispose();
            if (registered) inflight.Remove(exchange);
            if (usage.IsEmpty && exchange.Usage is { IsEmpty: false } seen) usage = seen;
            if (status == 499 && usage.IsEmpty && exchange.Stream)
            {
                usage = new Usage(call.Prepared.Body.WrittenCount / 4, 0, 0, 0, 0);
                estimated = true;
            }
            UsageMeter.Tag(span, status, usage);
            var cost = meter.Price(call.Target.UpstreamModel, call.ClientModel, usage);
            if (!usage.IsEmpty) call.Admission.Settle(cost.Priced ? cost.CostUsd : null, usage.TotalTokens);
            if (served is not null && !usage.IsEmpty)
            {
                limiter.AddTokens(served.Id, served.Tpm, usage.TotalTokens);
                metrics.DeploymentUsage(provider.Name, served.Id, usage.PromptTokens, usage.CachedReadTokens);
            }
            await call.Admission.DisposeAsync();
            meter.Record(new UsageRecord
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
                Tags = call.Identity.Tags,
                EndUser = call.Identity.EndUser,
            });
            call.Prepared.Dispose();
            exchange.Upstream.Dispose();
        }
    }

    /// <summary>Copies the provider's stream into the exchange as it arrives, reading its usage on the way.</summary>
    private static async ValueTask<(Usage, bool Estimated)> PumpStreamAsync(InflightExchange exchange, Stream upstream, UpstreamCall call, IdleDeadline idle)
    {
        var cancel = exchange.Upstream.Token;
        var scanner = new UsageScanner(call.Target.Provider.WireFormat);
        using var parser = new SseParser();
        while (true)
        {
            // A stream spends nearly all its life waiting for the provider's next chunk: wait with a zero-byte read and
            // take room in the exchange's body only once bytes are there (10,000 open streams each holding 16 KB were
            // 160 MB of heap). The bytes are read straight into the body, where every listener reads them.
            // A stream that does not support zero-byte reads returns 0 at once and the read below waits instead.
            Memory<byte> room;
            int n;
            try
            {
                await idle.ReadAsync(upstream, Memory<byte>.Empty);
                room = exchange.GetAppendBuffer();
                n = await idle.ReadAsync(upstream, room);
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
            parser.Feed(room.Span[..n], scanner, null!);
            exchange.Commit(n);
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

    internal static bool IsEventStream(string? media) =>
        media is not null && media.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase);

    // A ValueTask: a small answer has usually arrived with its headers, and the read then completes synchronously.
    private static async ValueTask<PooledBufferWriter> ReadBoundedAsync(Stream stream, long? contentLength, string providerName, IdleDeadline idle)
    {
        // A body of known length fits the buffer with a byte to spare, where the read that finds its end lands: asking
        // for 8 KB of room there too swapped a 1 KB rental for a 16 KB one on every response.
        var (output, room) = contentLength is { } length and < MaxResponseBytes
            ? (new PooledBufferWriter((int)length + 1), 1)
            : (new PooledBufferWriter(16 * 1024), 8192);
        try
        {
            while (true)
            {
                var n = await idle.ReadAsync(stream, output.GetMemory(room));
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

    private static void SetHeader(HttpRequestMessage request, string name, string value)
    {
        request.Headers.Remove(name);
        request.Headers.TryAddWithoutValidation(name, value);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId}: relaying the provider's response failed")]
    private partial void LogPumpFailure(Exception exception, string requestId);
}

/// <summary>What the upstream pump needs; it outlives the leader's HTTP request if followers still listen.</summary>
/// <param name="Order">The balancer's deployment order (null: configuration order, a provider with one deployment).</param>
/// <param name="Routing">What the balancer was given, told which deployment served (null with one deployment).</param>
/// <param name="Deployments">The snapshot <paramref name="Order"/> indexes into (null: the provider's current one).</param>
public sealed record UpstreamCall(
    string RequestId, ClientIdentity Identity, RouteTarget Target, string ClientModel, bool Stream,
    PreparedRequest Prepared, Admission Admission, long Started, string? AnthropicVersion, string? AnthropicBeta,
    int[]? Order = null, RoutingRequest? Routing = null, DeploymentSet? Deployments = null);
