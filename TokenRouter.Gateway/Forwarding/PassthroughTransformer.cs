using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// YARP's transforms for one passthrough call. Upstream: the checked target URI, the allowed client headers, the
/// provider's credentials (never the client's) and the body's declared length. Downstream: the provider's headers
/// without those of its host, a body watched for silence and read for usage on its way through, and an error the
/// client could not read as its own format's held back to be re-rendered.
/// </summary>
/// <remarks>One per request: YARP hands a transformer only the HttpContext, and the call is what it works on.</remarks>
internal sealed class PassthroughTransformer(PassthroughCall call, IOutboundAdapter adapter, ApiFormat clientFormat,
    IdleDeadline idle, GatewayMetrics metrics, TimeProvider time) : HttpTransformer
{
    private const int MaxErrorBytes = 64 * 1024;

    /// <summary>Beyond YARP's hop-by-hop list: what belongs to the provider's host, not the gateway's.</summary>
    private static readonly string[] HostHeaders = ["Alt-Svc", "Set-Cookie", "Server", "Date"];

    /// <summary>A status that fails over (429, 5xx, 529, 401/403) is held back, not relayed: another deployment follows.</summary>
    public bool HoldBackFailures { get; init; }

    public override ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix,
        CancellationToken cancellationToken)
    {
        var request = httpContext.Request;
        proxyRequest.RequestUri = call.Target;
        // YARP's body stream carries no length; a declared one is kept (else the body would go chunked).
        if (proxyRequest.Content is not null && request.ContentLength is { } length) proxyRequest.Content.Headers.ContentLength = length;
        UpstreamHeaders.CopyAllowed(request, proxyRequest);
        adapter.AddHeaders(proxyRequest, call.Deployment.ApiKey);

        metrics.Overhead(time.GetElapsedTime(call.Started));
        call.SentAt = time.GetTimestamp();
        call.Sent = true;
        return ValueTask.CompletedTask;
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse,
        CancellationToken cancellationToken)
    {
        if (proxyResponse is null) return false;
        // From here the limit is on silence, not on the whole answer: a stream may run for minutes.
        idle.Arm();
        call.HeadersArrived = true;
        metrics.UpstreamHeaders(time.GetElapsedTime(call.SentAt), call.Provider.Name);
        var status = call.Status = (int)proxyResponse.StatusCode;
        var content = proxyResponse.Content;
        var media = content.Headers.ContentType?.MediaType;

        // A failure another deployment may answer instead is held back (its body read for the Retry-After and in case it
        // is the last word after all). An error the client could not read as its own format's error (HTML from a proxy,
        // the other vendor's shape, an empty 404) is re-rendered in the client's shape, with the provider's status.
        call.HeldBack = status >= 400 && HoldBackFailures && FailoverRules.KindOf(status) is not null;
        if (call.HeldBack || (status >= 400 && (call.Provider.WireFormat != clientFormat || !PassthroughBodyFacts.IsJsonMediaType(media))))
        {
            var body = await ReadErrorBodyAsync(content);
            call.ProviderError = ProviderErrors.FromResponse(status, body, call.Provider.Name,
                UpstreamHeaders.RetryAfterSeconds(proxyResponse, time), call.Deployment.ApiKey);
            return false;
        }

        await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        var headers = httpContext.Response.Headers;
        foreach (var name in HostHeaders) headers.Remove(name);
        foreach (var name in proxyResponse.Headers.Connection) headers.Remove(name);
        headers[GatewayHeaders.RequestId] = call.RequestId;
        headers[GatewayHeaders.Provider] = call.Provider.Name;

        // The provider's own error in the client's format is passed on whole, but never with the provider's key in it
        // (some servers echo the key they were given). Error bodies are small: read, cleaned, sent in one piece.
        if (status >= 400)
        {
            var body = ProviderErrors.WithoutKey(await ReadErrorBodyAsync(content), call.Deployment.ApiKey);
            httpContext.Response.ContentLength = body.Length;
            proxyResponse.Content = new ByteArrayContent(body);
            content.Dispose();
            return true;
        }

        // Only a request that names a model runs one. Without this rule every poll of a batch and every read of a stored
        // response (GET /v1/responses/{id}), whose bodies repeat the usage of the run they describe, would bill it again.
        call.Relayed = status is >= 200 and <= 299 && call.Model is not null && !call.CountsTokens
            ? RelayedUsage.Create(content.Headers, media, call.Provider, adapter)
            : null;
        call.Stream |= call.Relayed?.IsStream ?? false;
        proxyResponse.Content = new WatchedContent(content, idle, call.Relayed);
        return true;
    }

    private async Task<byte[]> ReadErrorBodyAsync(HttpContent content)
    {
        var buffer = new byte[MaxErrorBytes];
        var length = 0;
        try
        {
            await using var stream = await content.ReadAsStreamAsync();
            while (length < buffer.Length)
            {
                var n = await idle.ReadAsync(stream, buffer.AsMemory(length));
                if (n == 0) break;
                length += n;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or ApiError or OperationCanceledException)
        {
            // What arrived is enough to tell the status; the rest is lost with the connection (or never came).
        }
        return buffer[..length];
    }

    /// <summary>The provider's body as YARP copies it to the client: each read re-arms the idle deadline (a stall becomes
    /// a 504 <see cref="ApiError"/>), and what was read is shown to the usage reader without being held back.</summary>
    private sealed class WatchedContent(HttpContent inner, IdleDeadline idle, RelayedUsage? usage) : HttpContent
    {
        protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
            new WatchedStream(await inner.ReadAsStreamAsync(cancellationToken), idle, usage);

        protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
            inner.CopyToAsync(stream, context);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    private sealed class WatchedStream(Stream inner, IdleDeadline idle, RelayedUsage? usage) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await idle.ReadAsync(inner, buffer);
            if (n > 0) usage?.Observe(buffer.Span[..n]);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
