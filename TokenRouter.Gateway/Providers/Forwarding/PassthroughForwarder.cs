using System.Buffers;
using System.Collections.Frozen;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Providers.Forwarding;

/// <summary>
/// Every <c>/v1/*</c> request the gateway has no endpoint of its own for (embeddings, moderations, legacy completions,
/// files, batches, Anthropic's <c>count_tokens</c>, …) is passed through to a provider unchanged: authenticate the
/// client key, pick the provider (by the JSON body's <c>model</c>, the <c>x-tokenrouter-provider</c> header, or the
/// first configured provider of the client's API format), admit it against the key's limits, forward it with the
/// provider's credentials instead of the client's, and stream the answer back as it arrives, reading its usage on the
/// way from a bounded copy — never holding bytes back from the client.
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
/// Anthropic's <c>count_tokens</c> (counted, not used), and not from responses over <see cref="MaxUsageBytes"/>.</para>
/// </remarks>
public sealed partial class PassthroughForwarder(
    ModelRouter router,
    OutboundAdapters adapters,
    ProviderHttpClient http,
    AdmissionController admissions,
    UsageMeter meter,
    GatewayMetrics metrics,
    SelfAddress selfAddress,
    IOptionsMonitor<GatewayOptions> options,
    TimeProvider time,
    ILogger<PassthroughForwarder> logger)
{
    /// <summary>Request header that picks the provider by name (<c>openai</c>, <c>deepseek</c>, <c>anthropic</c>, <c>sim-openai</c>, …).</summary>
    public const string ProviderRequestHeader = GatewayHeaders.Provider;

    /// <summary>The largest non-streamed JSON response whose <c>usage</c> is read; beyond it the response is relayed unmetered.</summary>
    public const int MaxUsageBytes = 1024 * 1024;

    private const int MaxErrorBytes = 64 * 1024;
    private const int CopyBufferBytes = 16 * 1024;

    /// <summary>Response headers never relayed: hop-by-hop, and what belongs to the provider's host, not the gateway's.</summary>
    private static readonly FrozenSet<string> SkippedResponseHeaders = FrozenSet.Create(StringComparer.OrdinalIgnoreCase,
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Alt-Svc", "Set-Cookie", "Server", "Date", GatewayHeaders.RequestId);

    /// <summary>Top-level API resources used as the ledger's model label of a request that names no model (bounded).</summary>
    private static readonly FrozenSet<string> KnownResources = FrozenSet.Create(StringComparer.Ordinal,
        "assistants", "audio", "batches", "chat", "complete", "completions", "containers", "conversations", "embeddings", "evals",
        "files", "fine_tuning", "images", "messages", "models", "moderations", "organizations", "realtime", "responses",
        "skills", "threads", "uploads", "vector_stores");


    /// <summary>One admitted request on its way to the provider; completed (settled, metered) exactly once.</summary>
    private sealed class Call(string requestId, ClientIdentity identity, ProviderEndpoint provider, string? model, string? clientModel,
        string label, bool stream, Admission admission, long started)
    {
        public string RequestId { get; } = requestId;
        public ClientIdentity Identity { get; } = identity;
        public ProviderEndpoint Provider { get; } = provider;
        public string? Model { get; } = model;
        public string? ClientModel { get; } = clientModel;
        public string Label { get; } = label;
        public bool Stream { get; set; } = stream;
        public Admission Admission { get; } = admission;
        public long Started { get; } = started;
        public bool Sent { get; set; }
        public int Status { get; set; } = StatusCodes.Status500InternalServerError;
        public Usage Usage { get; set; }
    }

    /// <summary>The client's API format: OpenAI on <c>/v1/chat/completions</c> whatever its headers say (the endpoint
    /// names its shape); Anthropic for <c>x-api-key</c>/<c>anthropic-version</c> or a path under <c>/v1/messages</c>;
    /// OpenAI otherwise. Errors the gateway makes are rendered in it.</summary>
    public static ApiFormat ClientFormatOf(HttpRequest request) =>
        !request.Path.StartsWithSegments("/v1/chat/completions", StringComparison.OrdinalIgnoreCase)
        && (request.Headers.ContainsKey("x-api-key") || request.Headers.ContainsKey("anthropic-version")
            || request.Path.StartsWithSegments("/v1/messages", StringComparison.OrdinalIgnoreCase))
            ? ApiFormat.Anthropic
            : ApiFormat.OpenAI;

    public async Task<IResult> HandleAsync(HttpContext context)
    {
        var started = time.GetTimestamp();
        var requestId = "req_" + Guid.CreateVersion7().ToString("N");
        var request = context.Request;
        var format = ClientFormatOf(request);
        var aborted = context.RequestAborted;
        context.Response.Headers[GatewayHeaders.RequestId] = requestId;
        metrics.InflightChanged(1);
        RequestBody? body = null;
        Call? call = null;
        try
        {
            var identity = context.ClientIdentity();
            var o = options.CurrentValue;
            if (request.ContentLength is { } declared && declared > o.MaxRequestBodyBytes) throw ApiError.BodyTooLarge(o.MaxRequestBodyBytes);

            var json = default(JsonFacts);
            var isJson = IsJson(request.ContentType);
            // A JSON body is read for its routing facts; a body of unknown length is read too, so the size limit holds
            // before a byte of it leaves for the provider. Only a declared length within the limit is streamed through.
            if (HasBody(context) && (isJson || request.ContentLength is null))
            {
                body = await RequestBodyReader.ReadAsync(request, o.MaxRequestBodyBytes, aborted);
                if (isJson) json = JsonFacts.Read(body.Memory.Span);
            }

            var (provider, model) = Route(request, format, json.Model);
            if (provider.BaseUri is null) router.SetSimulatorBase(selfAddress.Resolve());
            // Not a conditional expression: its null would become an empty ReadOnlyMemory (the byte[] conversion), not "no body".
            ReadOnlyMemory<byte>? content = null;
            if (body is not null) content = json.Rewrite(body.Memory, model);

            // Without a model there is nothing to price: rate and concurrency limits only (see the remarks).
            var admission = await admissions.AdmitAsync(model is null ? identity with { QuotaUsd = null } : identity, model ?? "",
                provider.Name, json.Stream, body?.Length ?? 0, json.MaxTokens, aborted);
            call = new Call(requestId, identity, provider, model, json.Model, model ?? ResourceLabel(request), json.Stream, admission, started);
            context.Response.Headers[GatewayHeaders.Provider] = provider.Name;

            await ForwardAsync(context, call, content);
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
            // Kestrel refused the request body (too large, malformed chunking) while it was being read or streamed upstream.
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

    private async Task ForwardAsync(HttpContext context, Call call, ReadOnlyMemory<byte>? content)
    {
        var request = context.Request;
        var aborted = context.RequestAborted;
        var provider = call.Provider;
        var adapter = adapters.For(provider.Kind);
        using var span = GatewayActivity.Source.StartActivity("Upstream", System.Diagnostics.ActivityKind.Client);
        span?.SetTag(GatewayActivity.Provider, provider.Name);
        if (call.Model is not null) span?.SetTag(GatewayActivity.Model, call.Model);
        try
        {
            using var upstreamRequest = new HttpRequestMessage(HttpMethod.Parse(request.Method), PassthroughPath.Resolve(provider, request))
            {
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
            };
            if (content is { } bytes) upstreamRequest.Content = new ReadOnlyMemoryContent(bytes);
            else if (HasBody(context)) upstreamRequest.Content = new StreamContent(request.Body, CopyBufferBytes);
            UpstreamHeaders.CopyAllowed(request, upstreamRequest);
            // A streamed body keeps its declared length (else it goes chunked); a buffered one knows its own.
            if (upstreamRequest.Content is StreamContent && request.ContentLength is { } length) upstreamRequest.Content.Headers.ContentLength = length;
            adapter.AddHeaders(upstreamRequest, provider);

            var timeout = options.CurrentValue.ProviderResponseTimeout;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(aborted);
            deadline.CancelAfter(timeout);
            metrics.Overhead(time.GetElapsedTime(call.Started));
            var sent = time.GetTimestamp();
            call.Sent = true;
            HttpResponseMessage response;
            try
            {
                response = await http.Invoker.SendAsync(upstreamRequest, deadline.Token);
            }
            catch (Exception) when (aborted.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex) when (FindBadRequest(ex) is { } bad)
            {
                throw BadRequestError(bad, options.CurrentValue.MaxRequestBodyBytes);
            }
            catch (OperationCanceledException)
            {
                throw ApiError.GatewayTimeout($"The provider '{provider.Name}' did not answer within {timeout.TotalSeconds:0} s.");
            }
            catch (HttpRequestException ex)
            {
                throw ApiError.BadGateway($"The provider '{provider.Name}' could not be reached ({ex.HttpRequestError}).");
            }

            using (response)
            {
                metrics.UpstreamHeaders(time.GetElapsedTime(sent), provider.Name);
                call.Status = (int)response.StatusCode;
                // From here the limit is on silence, not on the whole answer: a stream may run for minutes.
                var idle = new IdleDeadline(deadline, aborted, options.CurrentValue.UpstreamIdleTimeout, provider.Name);
                await RelayAsync(context, call, response, adapter, idle);
            }
        }
        catch (Exception) when (aborted.IsCancellationRequested)
        {
            call.Status = 499;
            throw;
        }
        finally
        {
            UsageMeter.Tag(span, call.Status, call.Usage);
        }
    }

    private async Task RelayAsync(HttpContext context, Call call, HttpResponseMessage response, IOutboundAdapter adapter, IdleDeadline idle)
    {
        var aborted = context.RequestAborted;
        var status = call.Status;
        var media = response.Content.Headers.ContentType?.MediaType;
        await using var upstream = await response.Content.ReadAsStreamAsync(aborted);

        // An error the client could not read as its own format's error (HTML from a proxy, the other vendor's shape,
        // an empty 404) is re-rendered in the client's shape, with the provider's status.
        if (status >= 400 && (call.Provider.WireFormat != ClientFormatOf(context.Request) || !IsJsonMediaType(media)))
        {
            var errorBody = await ReadErrorBodyAsync(upstream, idle);
            throw ProviderErrors.FromResponse(status, errorBody, call.Provider.Name, UpstreamHeaders.RetryAfterSeconds(response, time), call.Provider.ApiKey);
        }

        // The provider's own error, in the client's format: passed on whole, but never with the provider's key in it
        // (some servers echo the key they were given). Error bodies are small: read, cleaned, written in one piece.
        if (status >= 400)
        {
            var errorBody = ProviderErrors.WithoutKey(await ReadErrorBodyAsync(upstream, idle), call.Provider.ApiKey);
            var outgoingError = context.Response;
            outgoingError.StatusCode = status;
            CopyResponseHeaders(response, outgoingError);
            outgoingError.ContentLength = errorBody.Length;
            await outgoingError.Body.WriteAsync(errorBody, aborted);
            return;
        }

        // Only a request that names a model runs one. Without this rule every poll of a batch and every read of a stored
        // response (GET /v1/responses/{id}), whose bodies repeat the usage of the run they describe, would bill it again.
        using var relayed = status is >= 200 and <= 299 && call.Model is not null && !IsCountTokens(context.Request)
            ? RelayedUsage.Create(response.Content.Headers, media, call.Provider, adapter)
            : null;
        call.Stream |= relayed?.IsStream ?? false;

        var outgoing = context.Response;
        outgoing.StatusCode = status;
        CopyResponseHeaders(response, outgoing);
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await outgoing.StartAsync(aborted);

        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
        try
        {
            while (true)
            {
                int n;
                try
                {
                    n = await idle.ReadAsync(upstream, buffer);
                }
                catch (Exception ex) when (!aborted.IsCancellationRequested && ex is IOException or HttpRequestException or ApiError)
                {
                    // Too late for an error body: cut the client's connection so a truncated answer never looks whole.
                    call.Status = ex is ApiError timedOut ? timedOut.Status : StatusCodes.Status502BadGateway;
                    LogUpstreamFailure(call.RequestId, call.Status, ex is ApiError ? ex.Message : $"The provider '{call.Provider.Name}' broke off its response.");
                    context.Abort();
                    break;
                }
                if (n == 0) break;
                relayed?.Observe(buffer.AsSpan(0, n));
                await outgoing.Body.WriteAsync(buffer.AsMemory(0, n), aborted);
                await outgoing.Body.FlushAsync(aborted);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (relayed is not null)
            {
                call.Usage = relayed.Finish();
                // The provider's own error event inside a 200 stream: the request failed, whatever its head said.
                if (relayed.Failed && call.Status is >= 200 and <= 299) call.Status = StatusCodes.Status502BadGateway;
            }
        }
    }

    private static void CopyResponseHeaders(HttpResponseMessage from, HttpResponse to)
    {
        var connection = from.Headers.Connection;
        foreach (var (name, values) in from.Headers)
        {
            if (SkippedResponseHeaders.Contains(name) || connection.Contains(name, StringComparer.OrdinalIgnoreCase)) continue;
            to.Headers[name] = values.ToArray();
        }
        foreach (var (name, values) in from.Content.Headers)
        {
            to.Headers[name] = values.ToArray();
        }
    }

    private static async Task<byte[]> ReadErrorBodyAsync(Stream upstream, IdleDeadline idle)
    {
        var buffer = new byte[MaxErrorBytes];
        var length = 0;
        try
        {
            while (length < buffer.Length)
            {
                var n = await idle.ReadAsync(upstream, buffer.AsMemory(length));
                if (n == 0) break;
                length += n;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or ApiError)
        {
            // What arrived is enough to tell the status; the rest is lost with the connection (or never came).
        }
        return buffer[..length];
    }

    // ---- Accounting ----------------------------------------------------------------------------------------

    private async Task CompleteAsync(Call call)
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
        };
        meter.Record(record);
    }

    /// <summary>A priced model's usage is priced as chat's; tokens nobody can price are flagged, never billed $0;
    /// a request that reported no tokens (listing files, counting tokens, no model) cost nothing the gateway meters.</summary>
    private Cost Price(Call call, in Usage usage) =>
        usage.IsEmpty && !meter.IsPriced(call.Model, call.ClientModel) ? new Cost(0, 0, true)
        : meter.Price(call.Model ?? call.Label, call.ClientModel, usage);

    // ---- Helpers -------------------------------------------------------------------------------------------

    private static bool HasBody(HttpContext context) =>
        context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? context.Request.ContentLength > 0;

    private static bool IsJson(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType)) return false;
        var semicolon = contentType.IndexOf(';');
        return IsJsonMediaType((semicolon < 0 ? contentType : contentType[..semicolon]).Trim());
    }

    private static bool IsJsonMediaType(string? media) =>
        media is not null && (media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                              || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    /// <summary>Anthropic's token counting reports <c>input_tokens</c> of a prompt that was not run: nothing to bill.</summary>
    private static bool IsCountTokens(HttpRequest request) =>
        request.Path.Value is { } path && path.EndsWith("/count_tokens", StringComparison.OrdinalIgnoreCase);

    private static BadHttpRequestException? FindBadRequest(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is BadHttpRequestException bad) return bad;
        }
        return null;
    }

    private static ApiError BadRequestError(BadHttpRequestException bad, long limit) =>
        bad.StatusCode == StatusCodes.Status413PayloadTooLarge
            ? ApiError.BodyTooLarge(limit)
            : new ApiError(bad.StatusCode, "invalid_request_error", bad.Message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Passthrough request {RequestId} failed upstream: {Status} {Message}")]
    private partial void LogUpstreamFailure(string requestId, int status, string message);


    // ---- The request body's routing facts ----------------------------------------------------------------

    /// <summary>What the gateway needs from a JSON request body: its top-level <c>model</c> (and where it sits, to
    /// rewrite it), <c>stream</c> and completion cap. Everything else stays unread.</summary>
    private readonly record struct JsonFacts(string? Model, int ModelStart, int ModelLength, bool Stream, int? MaxTokens)
    {
        public static JsonFacts Read(ReadOnlySpan<byte> json)
        {
            if (json.Trim(" \t\r\n"u8).IsEmpty) return default;
            var reader = new Utf8JsonReader(json);
            try
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    reader.Read(); // throws on trailing data
                    return default;
                }
                string? model = null;
                int start = 0, length = 0;
                var stream = false;
                int? maxTokens = null;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isModel = reader.ValueTextEquals("model"u8);
                    var isStream = !isModel && reader.ValueTextEquals("stream"u8);
                    var isMax = !isModel && !isStream && (reader.ValueTextEquals("max_tokens"u8)
                        || reader.ValueTextEquals("max_completion_tokens"u8) || reader.ValueTextEquals("max_output_tokens"u8));
                    reader.Read();
                    if (isModel)
                    {
                        // Duplicate keys would let the gateway route and price one model while the provider runs another.
                        if (start > 0) throw ApiError.InvalidRequest("The request body names 'model' more than once.", "model");
                        start = (int)reader.TokenStartIndex;
                        if (reader.TokenType == JsonTokenType.String)
                        {
                            model = reader.GetString();
                            length = reader.ValueSpan.Length + 2; // the raw (still escaped) value and its quotes
                        }
                    }
                    else if (isStream) stream = reader.TokenType == JsonTokenType.True;
                    else if (isMax && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var max)) maxTokens = max;
                    reader.Skip();
                }
                reader.Read(); // throws on trailing data
                return new JsonFacts(string.IsNullOrEmpty(model) ? null : model, start, length, stream, maxTokens);
            }
            catch (JsonException ex)
            {
                throw ApiError.InvalidJson(ex.Message);
            }
        }

        /// <summary>The body with <c>model</c> set to <paramref name="upstreamModel"/>; the same bytes when it already is.</summary>
        public ReadOnlyMemory<byte> Rewrite(ReadOnlyMemory<byte> body, string? upstreamModel)
        {
            if (Model is null || upstreamModel is null || upstreamModel == Model) return body;
            var encoded = JsonEncodedText.Encode(upstreamModel).EncodedUtf8Bytes;
            var rewritten = new byte[body.Length - ModelLength + encoded.Length + 2];
            var span = body.Span;
            span[..ModelStart].CopyTo(rewritten);
            var at = ModelStart;
            rewritten[at++] = (byte)'"';
            encoded.CopyTo(rewritten.AsSpan(at));
            at += encoded.Length;
            rewritten[at++] = (byte)'"';
            span[(ModelStart + ModelLength)..].CopyTo(rewritten.AsSpan(at));
            return rewritten;
        }
    }

    // ---- Usage from the relayed response -----------------------------------------------------------------

    /// <summary>
    /// Reads a response's usage from the bytes relayed to the client: an event stream event by event (nothing kept but
    /// the unfinished event), a JSON body from a copy of at most <see cref="MaxUsageBytes"/> (larger: not metered).
    /// </summary>
    private sealed class RelayedUsage : IDisposable
    {
        private readonly IOutboundAdapter _adapter;
        private readonly SseParser? _parser;
        private readonly IStreamTranslator? _events;
        private PooledBufferWriter? _copy;

        private RelayedUsage(IOutboundAdapter adapter, SseParser? parser, IStreamTranslator? events, PooledBufferWriter? copy)
        {
            _adapter = adapter;
            _parser = parser;
            _events = events;
            _copy = copy;
        }

        public bool IsStream => _parser is not null;

        /// <summary>True when the stream carried the provider's error event.</summary>
        public bool Failed => _events?.Failed ?? false;

        public static RelayedUsage? Create(System.Net.Http.Headers.HttpContentHeaders headers, string? media, ProviderEndpoint provider,
            IOutboundAdapter adapter)
        {
            // The request refused compression; a provider that compresses anyway is relayed unmetered.
            if (headers.ContentEncoding.Any(e => !e.Equals("identity", StringComparison.OrdinalIgnoreCase))) return null;
            if (media is not null && media.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase))
            {
                // Anthropic splits usage over message_start and message_delta: its chat scanner knows how to add them up.
                IStreamTranslator events = provider.WireFormat == ApiFormat.Anthropic
                    ? new UsageScanner(ApiFormat.Anthropic)
                    : new LastUsageEvent(adapter);
                return new RelayedUsage(adapter, new SseParser(), events, null);
            }
            if (!IsJsonMediaType(media) || headers.ContentLength > MaxUsageBytes) return null;
            return new RelayedUsage(adapter, null, null, new PooledBufferWriter((int)(headers.ContentLength ?? 16 * 1024) + 1));
        }

        public void Observe(ReadOnlySpan<byte> chunk)
        {
            if (_parser is not null)
            {
                _parser.Feed(chunk, _events!, null!);
                return;
            }
            if (_copy is null) return;
            if (_copy.WrittenCount + chunk.Length > MaxUsageBytes)
            {
                _copy.Dispose(); // too big to parse on the side: relayed unmetered
                _copy = null;
                return;
            }
            _copy.Write(chunk);
        }

        public Usage Finish()
        {
            if (_parser is not null)
            {
                _parser.Flush(_events!, null!);
                return _events!.Usage;
            }
            if (_copy is null) return default;
            try
            {
                var reader = new Utf8JsonReader(_copy.WrittenSpan);
                using var doc = JsonDocument.ParseValue(ref reader);
                return TryReadUsage(_adapter, doc.RootElement, out var usage) ? usage : default;
            }
            catch (JsonException)
            {
                return default;
            }
        }

        public void Dispose()
        {
            _parser?.Dispose();
            _copy?.Dispose();
            _copy = null;
        }
    }

    /// <summary>
    /// The usage of a JSON response or event: a top-level <c>usage</c> object (embeddings, completions, moderations …),
    /// or the <c>response.usage</c> of the Responses API's events. OpenAI-style <c>prompt_tokens</c> and Anthropic usage
    /// are read by the provider's adapter, the Responses API's <c>input_tokens</c>/<c>output_tokens</c> here.
    /// </summary>
    private static bool TryReadUsage(IOutboundAdapter adapter, JsonElement root, out Usage usage)
    {
        usage = default;
        if (root.ValueKind != JsonValueKind.Object) return false;
        var holder = root;
        if (!root.TryGetProperty("usage", out var u) || u.ValueKind != JsonValueKind.Object)
        {
            if (!root.TryGetProperty("response", out holder) || holder.ValueKind != JsonValueKind.Object
                || !holder.TryGetProperty("usage", out u) || u.ValueKind != JsonValueKind.Object) return false;
        }
        if (adapter.Kind != ProviderKind.Anthropic && !u.TryGetProperty("prompt_tokens", out _) && u.TryGetProperty("input_tokens", out _))
        {
            var cached = u.TryGetProperty("input_tokens_details", out var details) && details.ValueKind == JsonValueKind.Object ? Int(details, "cached_tokens") : 0;
            usage = new Usage(Int(u, "input_tokens"), cached, 0, 0, Int(u, "output_tokens"));
            return true;
        }
        usage = adapter.ReadUsage(holder);
        return true;

        static int Int(JsonElement o, string name) =>
            o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : 0;
    }

    /// <summary>An OpenAI-style stream's usage: the last event that reports one (the final chunk, <c>response.completed</c>).</summary>
    private sealed class LastUsageEvent(IOutboundAdapter adapter) : IStreamTranslator
    {
        public Usage Usage { get; private set; }
        public bool Finished => false;
        public bool Failed { get; private set; }

        public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
        {
            if (data.StartsWith("{\"error\""u8) || eventName.SequenceEqual("error"u8)) Failed = true;
            if (data.IndexOf("\"usage\""u8) < 0) return; // most events carry none: not parsed
            try
            {
                var reader = new Utf8JsonReader(data);
                using var doc = JsonDocument.ParseValue(ref reader);
                if (TryReadUsage(adapter, doc.RootElement, out var usage) && !usage.IsEmpty) Usage = usage;
            }
            catch (JsonException)
            {
                // Not JSON ([DONE], say): no usage in it.
            }
        }

        public void Complete(IBufferWriter<byte> output)
        {
        }
    }
}
