using System.Buffers;
using System.Globalization;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Vendors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Delivery to one client: reads an <see cref="InflightExchange"/> from its start at the client's own pace and answers
/// in the client's format — the JSON body (translated when the provider speaks the other API) with the cost headers,
/// or the stream event by event, ending in a well-formed error event when the call failed after it started. A
/// follower's answer is metered here, as a dedup saving; the call itself is metered by the <see cref="UpstreamPump"/>.
/// </summary>
public sealed class ClientDelivery(UsageMeter meter, TimeProvider time)
{
    /// <summary>Answers one client from the exchange, in the client's own format.</summary>
    public async Task DeliverAsync(InflightExchange exchange, Listener l)
    {
        var aborted = l.Context.RequestAborted;
        await exchange.WaitForHeadAsync(aborted);
        if (exchange.Status == 0 && exchange.LeaderRejected && !l.Originator) throw new LeaderRejectedException();
        if (exchange.Status == 0)
        {
            if (l.Follower) RecordFollower(exchange, l, exchange.Error?.Status ?? 502);
            var error = exchange.Error ?? ApiError.BadGateway("The provider gave no response.");
            // Unreachable, silent or every deployment saturated: a fallback model (or the group's next member) may answer instead.
            if (l.CanFallBack && (error.Status is 502 or 504 || error.Code == ApiError.DeploymentsSaturatedCode)) throw new FallbackRequiredException(error);
            throw error;
        }

        if (exchange.Status is < 200 or > 299)
        {
            var errorBody = (await ReadAllAsync(exchange, aborted)).ToArray();
            if (l.Follower) RecordFollower(exchange, l, exchange.Status);
            if (l.CanFallBack && FailoverRules.KindOf(exchange.Status) is not null)
                throw new FallbackRequiredException(ProviderErrors.FromResponse(exchange.Status, WithoutKeys(errorBody, l.Target.Provider),
                    l.Target.Provider.Name, exchange.RetryAfterSeconds));
            await RelayProviderErrorAsync(l, exchange.Status, errorBody, exchange.RetryAfterSeconds);
            return;
        }

        if (UpstreamPump.IsEventStream(exchange.ContentType)) await DeliverStreamAsync(exchange, l);
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
            var reader = new Utf8JsonReader(body.Span);
            using var doc = JsonDocument.ParseValue(ref reader);
            ResponseTranslator.TranslateJson(providerFormat, l.ClientFormat, doc.RootElement, usage, l.ClientModel, translated);
        }

        var headers = l.Context.Response.Headers;
        headers[GatewayHeaders.CachedTokens] = usage.CachedReadTokens.ToString(CultureInfo.InvariantCulture);
        var cost = meter.Price(l.Target.UpstreamModel, l.ClientModel, usage);
        if (!cost.Priced) headers[GatewayHeaders.Unpriced] = "true";
        else if (l.Follower)
        {
            headers[GatewayHeaders.Cost] = "0";
            headers[GatewayHeaders.CacheSavings] = "0";
            headers[GatewayHeaders.DedupSavings] = Usd(cost.CostUsd);
        }
        else
        {
            headers[GatewayHeaders.Cost] = Usd(cost.CostUsd);
            headers[GatewayHeaders.CacheSavings] = Usd(cost.CacheSavingsUsd);
        }
        if (l.Follower)
        {
            headers[GatewayHeaders.Deduplicated] = "true";
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
        if (l.Follower) response.Headers[GatewayHeaders.Deduplicated] = "true";
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
                for (; index < count; index++) parser.Feed(exchange.Chunk(index).Span, translator, writer);
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

    /// <summary>The whole body; valid until the listener leaves the exchange.</summary>
    private static async ValueTask<ReadOnlyMemory<byte>> ReadAllAsync(InflightExchange exchange, CancellationToken cancellationToken)
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
            chunk.CopyTo(all.AsMemory(offset));
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
            await l.Context.Response.Body.WriteAsync(WithoutKeys(body, l.Target.Provider), l.Context.RequestAborted);
            return;
        }
        throw ProviderErrors.FromResponse(status, WithoutKeys(body, l.Target.Provider), l.Target.Provider.Name, retryAfterSeconds);
    }

    /// <summary>The body without any of the provider's keys: whichever deployment answered may have echoed its own.</summary>
    private static byte[] WithoutKeys(byte[] body, ProviderEndpoint provider)
    {
        body = ProviderErrors.WithoutKey(body, provider.ApiKey);
        foreach (var d in provider.Deployments) body = ProviderErrors.WithoutKey(body, d.ApiKey);
        return body;
    }

    private static bool LooksLikeJson(ReadOnlySpan<byte> body)
    {
        body = body.TrimStart(" \r\n\t"u8);
        return !body.IsEmpty && body[0] == (byte)'{';
    }

    /// <summary>A follower cost nothing upstream; what it would have cost is the dedup saving.</summary>
    private void RecordFollower(InflightExchange exchange, Listener l, int status)
    {
        // The first request here fell back to its own call after the leading replica died: the pump metered it.
        if (l.Originator && exchange.ProducedLocally) return;
        var usage = exchange.Usage;
        var cost = meter.Price(l.Target.UpstreamModel, l.ClientModel, usage);
        meter.Record(new UsageRecord
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
            Tags = l.Identity.Tags,
            EndUser = l.Identity.EndUser,
        });
    }

    private static string Usd(decimal value) => value.ToString("0.##########", CultureInfo.InvariantCulture);
}

/// <summary>One client reading an exchange.</summary>
public sealed record Listener(
    HttpContext Context, ApiFormat ClientFormat, string ClientModel, bool ClientWantsStreamUsage,
    ClientIdentity Identity, RouteTarget Target, string RequestId, long Started, bool Follower, bool Originator, bool CanFallBack = false);

/// <summary>Thrown to a follower whose exchange ended before any upstream call: its leader's refusal is not its own.</summary>
public sealed class LeaderRejectedException : Exception;

/// <summary>Every deployment of the model failed before the client saw a byte, and it has a fallback model to try.</summary>
public sealed class FallbackRequiredException(ApiError failure) : Exception(failure.Message)
{
    /// <summary>What the client gets if no fallback answers either.</summary>
    public ApiError Failure { get; } = failure;
}
