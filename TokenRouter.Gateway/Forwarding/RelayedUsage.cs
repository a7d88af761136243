using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Reads a response's usage from the bytes relayed to the client: an event stream event by event (nothing kept but
/// the unfinished event), a JSON body from a copy of at most <see cref="MaxUsageBytes"/> (larger: not metered).
/// </summary>
internal sealed class RelayedUsage : IDisposable
{
    /// <summary>The largest non-streamed JSON response whose <c>usage</c> is read; beyond it the response is relayed unmetered.</summary>
    public const int MaxUsageBytes = 1024 * 1024;

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
        if (!PassthroughBodyFacts.IsJsonMediaType(media) || headers.ContentLength > MaxUsageBytes) return null;
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

    /// <summary>
    /// The usage of a JSON response or event: a top-level <c>usage</c> object (embeddings, completions, moderations …),
    /// or the <c>response.usage</c> of the Responses API's events. Read by the provider's usage reader, except that an
    /// OpenAI-format provider's usage may be in the Responses API's shape.
    /// </summary>
    private static bool TryReadUsage(IOutboundAdapter adapter, JsonElement root, out Usage usage)
    {
        usage = default;
        if (root.ValueKind != JsonValueKind.Object) return false;
        if (!root.TryGetProperty("usage", out var u) || u.ValueKind != JsonValueKind.Object)
        {
            if (!root.TryGetProperty("response", out var holder) || holder.ValueKind != JsonValueKind.Object
                || !holder.TryGetProperty("usage", out u) || u.ValueKind != JsonValueKind.Object) return false;
        }
        if (adapter.Kind != ProviderKind.Anthropic && OpenAIUsageReader.Instance.TryReadResponsesApi(u, out usage)) return true;
        usage = adapter.Usage.ReadUsage(u);
        return true;
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
