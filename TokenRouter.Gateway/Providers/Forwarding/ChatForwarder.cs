using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers.Streaming;

namespace TokenRouter.Gateway.Providers.Forwarding;

/// <summary>
/// The chat request path for both client APIs: authenticate, read, parse (InboundAdapter), route, run the
/// pipeline, forward (Proxy) and answer in the client's format, metering every request. Streams are relayed event
/// by event and never buffered; the upstream call is cancelled when the client goes away.
/// </summary>
public sealed partial class ChatForwarder(
    ApiKeyAuthenticator authenticator,
    ModelRouter router,
    RequestPipeline pipeline,
    OutboundAdapters adapters,
    ProviderHttpClient http,
    PriceTable prices,
    IUsageSink usageSink,
    SelfAddress selfAddress,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider time,
    ILogger<ChatForwarder> logger)
{
    public const string CostHeader = "x-tokenrouter-cost-usd";
    public const string CacheSavingsHeader = "x-tokenrouter-cache-savings-usd";
    public const string CachedTokensHeader = "x-tokenrouter-cached-tokens";
    public const string UnpricedHeader = "x-tokenrouter-unpriced";
    public const string PrefixHashHeader = "x-tokenrouter-prefix-hash";
    public const string FullHashHeader = "x-tokenrouter-full-hash";
    public const string ProviderHeader = "x-tokenrouter-provider";
    public const string RequestIdHeader = "x-request-id";

    private const int MaxResponseBytes = 64 * 1024 * 1024;
    private readonly HashSet<string> _unpricedLogged = new(StringComparer.OrdinalIgnoreCase);

    public async Task<IResult> HandleAsync(HttpContext context, ApiFormat clientFormat)
    {
        var started = time.GetTimestamp();
        var requestId = "req_" + Guid.CreateVersion7().ToString("N");
        context.Response.Headers[RequestIdHeader] = requestId;
        var o = options.CurrentValue;
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
            using (envelope)
            {
                var target = router.Resolve(envelope.Model);
                if (target.Provider.BaseUri is null) router.SetSimulatorBase(selfAddress.Resolve());
                using var prepared = pipeline.Prepare(envelope, target, identity);
                var headers = context.Response.Headers;
                headers[PrefixHashHeader] = prepared.PrefixHash;
                headers[FullHashHeader] = prepared.FullHash;
                headers[ProviderHeader] = target.Provider.Name;
                var exchange = new Exchange(context, clientFormat, envelope, target, identity, requestId, started);
                await ForwardAsync(exchange, prepared);
                return TypedResults.Empty;
            }
        }
        catch (ApiError error) when (!context.Response.HasStarted)
        {
            if (error.Status >= 500) LogUpstreamFailure(requestId, error.Status, error.Message);
            return new ApiErrorResult(error, clientFormat);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return TypedResults.Empty; // the client left before we answered
        }
    }

    /// <summary>Everything one forwarded request carries through the proxy stage.</summary>
    private sealed record Exchange(
        HttpContext Context, ApiFormat ClientFormat, Envelope Envelope, RouteTarget Target, ClientIdentity Identity,
        string RequestId, long Started);

    private async Task ForwardAsync(Exchange x, PreparedRequest prepared)
    {
        var provider = x.Target.Provider;
        var adapter = adapters.For(provider.Kind);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(provider.BaseUri!, adapter.RequestPath))
        {
            Content = new ReadOnlyMemoryContent(prepared.Body.WrittenMemory),
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        adapter.AddHeaders(request, provider);
        if (provider.Kind == ProviderKind.Anthropic && x.ClientFormat == ApiFormat.Anthropic)
        {
            // The client chose the API version and betas it was written against.
            CopyHeader(x.Context.Request, request, "anthropic-version");
            CopyHeader(x.Context.Request, request, "anthropic-beta");
        }

        var aborted = x.Context.RequestAborted;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        timeout.CancelAfter(options.CurrentValue.ProviderResponseTimeout);
        HttpResponseMessage response;
        try
        {
            response = await http.Invoker.SendAsync(request, timeout.Token);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            Record(x, default, 499);
            throw;
        }
        catch (OperationCanceledException)
        {
            Record(x, default, 504);
            throw ApiError.GatewayTimeout($"The provider '{provider.Name}' did not answer within {options.CurrentValue.ProviderResponseTimeout.TotalSeconds:0} s.");
        }
        catch (HttpRequestException ex)
        {
            Record(x, default, 502);
            throw ApiError.BadGateway($"The provider '{provider.Name}' could not be reached ({ex.HttpRequestError}).");
        }

        using (response)
        {
            // Past the headers, a stream may legitimately run for minutes.
            timeout.CancelAfter(Timeout.InfiniteTimeSpan);
            var status = (int)response.StatusCode;
            if (status is < 200 or > 299)
            {
                await RelayProviderErrorAsync(x, response, status);
                return;
            }
            if (x.Envelope.Stream) await RelayStreamAsync(x, response, adapter);
            else await RelayJsonAsync(x, response, adapter);
        }
    }

    private async Task RelayJsonAsync(Exchange x, HttpResponseMessage response, IOutboundAdapter adapter)
    {
        using var body = await ReadBoundedAsync(response, x);
        Usage usage;
        using var output = new PooledBufferWriter(body.WrittenCount + 512);
        try
        {
            var reader = new Utf8JsonReader(body.WrittenSpan);
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException("not an object");
            usage = adapter.ReadUsage(doc.RootElement);
            if (x.Target.Provider.WireFormat == x.ClientFormat) output.Write(body.WrittenSpan);
            else ResponseTranslator.TranslateJson(x.Target.Provider.WireFormat, x.ClientFormat, doc.RootElement, usage, x.Envelope.Model, output);
        }
        catch (JsonException)
        {
            Record(x, default, 502);
            throw ApiError.BadGateway($"The provider '{x.Target.Provider.Name}' sent a response that is not valid JSON.");
        }

        var cost = Price(x, usage);
        var headers = x.Context.Response.Headers;
        headers[CachedTokensHeader] = usage.CachedReadTokens.ToString(CultureInfo.InvariantCulture);
        if (cost.Priced)
        {
            headers[CostHeader] = cost.CostUsd.ToString("0.##########", CultureInfo.InvariantCulture);
            headers[CacheSavingsHeader] = cost.CacheSavingsUsd.ToString("0.##########", CultureInfo.InvariantCulture);
        }
        else headers[UnpricedHeader] = "true";
        Record(x, usage, 200, cost);

        x.Context.Response.StatusCode = 200;
        x.Context.Response.ContentType = "application/json";
        x.Context.Response.ContentLength = output.WrittenCount;
        await x.Context.Response.Body.WriteAsync(output.WrittenMemory, x.Context.RequestAborted);
    }

    private async Task RelayStreamAsync(Exchange x, HttpResponseMessage response, IOutboundAdapter adapter)
    {
        var media = response.Content.Headers.ContentType?.MediaType;
        if (media is not null && !media.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase))
        {
            // A provider that ignored "stream": relay its JSON answer as a normal response rather than fail.
            if (media.Contains("json", StringComparison.OrdinalIgnoreCase))
            {
                x.Envelope.Stream = false;
                await RelayJsonAsync(x, response, adapter);
                return;
            }
            Record(x, default, 502);
            throw ApiError.BadGateway($"The provider '{x.Target.Provider.Name}' answered a streaming request with '{media}'.");
        }

        var translator = StreamTranslators.Create(x.Target.Provider.WireFormat, x.ClientFormat, x.Envelope.ClientWantsStreamUsage, x.Envelope.Model);
        var client = x.Context.Response;
        client.StatusCode = 200;
        client.ContentType = "text/event-stream";
        client.Headers.CacheControl = "no-cache";
        client.Headers["X-Accel-Buffering"] = "no";
        var aborted = x.Context.RequestAborted;
        await client.StartAsync(aborted);

        var writer = client.BodyWriter;
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        using var parser = new SseParser();
        var status = 200;
        try
        {
            await using var upstream = await response.Content.ReadAsStreamAsync(aborted);
            while (true)
            {
                var n = await upstream.ReadAsync(buffer, aborted);
                if (n == 0) break;
                parser.Feed(buffer.AsSpan(0, n), translator, writer);
                if (writer.UnflushedBytes > 0) await writer.FlushAsync(aborted);
            }
            parser.Flush(translator, writer);
            if (!translator.Finished)
            {
                status = 502;
                LogStreamTruncated(x.RequestId, x.Target.Provider.Name);
                WriteStreamError(writer, x.ClientFormat, ApiError.BadGateway("The provider ended the stream early."));
            }
            else translator.Complete(writer);
            await writer.FlushAsync(aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            status = 499; // the client left; disposing the response cancels the upstream call
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            status = 502;
            LogStreamTruncated(x.RequestId, x.Target.Provider.Name);
            WriteStreamError(writer, x.ClientFormat, ApiError.BadGateway("The provider's stream broke off."));
            await writer.FlushAsync(CancellationToken.None);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            var usage = translator.Usage;
            Record(x, usage, status, Price(x, usage));
        }
    }

    /// <summary>An error after the stream started can only be told as a final event in the client's format.</summary>
    private static void WriteStreamError(IBufferWriter<byte> writer, ApiFormat format, ApiError error)
    {
        var json = ApiErrorResult.Serialize(error, format);
        if (format == ApiFormat.Anthropic) SseWriter.WriteEvent(writer, "error"u8, json);
        else SseWriter.WriteData(writer, json);
    }

    private async Task RelayProviderErrorAsync(Exchange x, HttpResponseMessage response, int status)
    {
        using var body = await ReadBoundedAsync(response, x);
        Record(x, default, status);
        if (x.Target.Provider.WireFormat == x.ClientFormat && LooksLikeJson(body.WrittenSpan))
        {
            x.Context.Response.StatusCode = status;
            x.Context.Response.ContentType = "application/json";
            if (response.Headers.RetryAfter is { } retry) x.Context.Response.Headers.RetryAfter = retry.ToString();
            await x.Context.Response.Body.WriteAsync(body.WrittenMemory, x.Context.RequestAborted);
            return;
        }
        throw ProviderErrors.FromResponse(status, body.WrittenSpan, x.Target.Provider.Name);
    }

    private static bool LooksLikeJson(ReadOnlySpan<byte> body)
    {
        body = body.TrimStart(" \r\n\t"u8);
        return !body.IsEmpty && body[0] == (byte)'{';
    }

    private static async Task<PooledBufferWriter> ReadBoundedAsync(HttpResponseMessage response, Exchange x)
    {
        var output = new PooledBufferWriter(response.Content.Headers.ContentLength is { } cl and < MaxResponseBytes ? (int)cl + 1 : 16 * 1024);
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(x.Context.RequestAborted);
            while (true)
            {
                var memory = output.GetMemory(8192);
                var n = await stream.ReadAsync(memory, x.Context.RequestAborted);
                if (n == 0) break;
                output.Advance(n);
                if (output.WrittenCount > MaxResponseBytes)
                    throw ApiError.BadGateway($"The provider's response exceeded {MaxResponseBytes} bytes.");
            }
            return output;
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            output.Dispose();
            throw ApiError.BadGateway($"The provider '{x.Target.Provider.Name}' broke off its response.");
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    private Cost Price(Exchange x, in Usage usage)
    {
        if (prices.TryGet(x.Target.UpstreamModel, out var price) || prices.TryGet(x.Envelope.Model, out price))
            return CostCalculator.Compute(usage, price);
        lock (_unpricedLogged)
        {
            if (_unpricedLogged.Add(x.Target.UpstreamModel)) LogUnpriced(x.Target.UpstreamModel);
        }
        return Cost.Unpriced;
    }

    private void Record(Exchange x, Usage usage, int status, Cost? cost = null)
    {
        var c = cost ?? (usage.IsEmpty ? new Cost(0, 0, true) : Price(x, usage));
        usageSink.Record(new UsageRecord
        {
            RequestId = x.RequestId,
            KeyId = x.Identity.KeyId,
            Model = x.Target.UpstreamModel,
            Provider = x.Target.Provider.Name,
            Usage = usage,
            CostUsd = c.Priced ? c.CostUsd : null,
            CacheSavingsUsd = c.CacheSavingsUsd,
            Unpriced = !c.Priced,
            Stream = x.Envelope.Stream,
            Status = status,
            LatencyMs = time.GetElapsedTime(x.Started).TotalMilliseconds,
            Timestamp = time.GetUtcNow(),
        });
    }

    private static void CopyHeader(HttpRequest from, HttpRequestMessage to, string name)
    {
        var value = from.Headers[name];
        if (value.Count == 0) return;
        to.Headers.Remove(name);
        to.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)value!);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} has no price: its usage is recorded as unpriced, not billed $0. Add it under Pricing:Models.")]
    private partial void LogUnpriced(string model);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId} failed upstream: {Status} {Message}")]
    private partial void LogUpstreamFailure(string requestId, int status, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: the stream from {Provider} ended before its final event")]
    private partial void LogStreamTruncated(string requestId, string provider);
}
