using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Vendors.Anthropic;

/// <summary>
/// Anthropic-format provider → Anthropic client: every event is re-emitted byte for byte; usage is read from
/// <c>message_start</c> and <c>message_delta</c> on the way.
/// </summary>
public sealed class AnthropicStreamPassthrough : IStreamTranslator
{
    private AnthropicUsageAccumulator _usage;

    public Usage Usage => _usage.ToUsage();
    public bool Finished { get; private set; }
    public bool Failed { get; private set; }

    public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        var kind = AnthropicSse.Classify(eventName, data);
        switch (kind)
        {
            case AnthropicEventKind.MessageStart:
            case AnthropicEventKind.MessageDelta:
                AnthropicSse.ApplyUsage(ref _usage, kind, data);
                break;
            case AnthropicEventKind.MessageStop:
                Finished = true;
                break;
            case AnthropicEventKind.Error:
                Failed = true;
                break;
        }
        // SDKs dispatch on the event line: name an event the upstream left unnamed after its type.
        var name = eventName.IsEmpty ? AnthropicSse.NameOf(kind) : eventName;
        if (name.IsEmpty) SseWriter.WriteData(output, data);
        else SseWriter.WriteEvent(output, name, data);
    }

    public void Complete(IBufferWriter<byte> output)
    {
    }
}

internal enum AnthropicEventKind
{
    Unknown,
    MessageStart,
    ContentBlockStart,
    ContentBlockDelta,
    ContentBlockStop,
    MessageDelta,
    MessageStop,
    Ping,
    Error,
}

/// <summary>Reading Anthropic stream events: which event it is, and the usage it carries.</summary>
internal static class AnthropicSse
{
    public static AnthropicEventKind Classify(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        if (!eventName.IsEmpty) return KindOf(eventName);
        // No event line: the data's "type" says the same thing.
        try
        {
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return AnthropicEventKind.Unknown;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    return reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped ? KindOf(reader.ValueSpan) : AnthropicEventKind.Unknown;
                }
                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }
        return AnthropicEventKind.Unknown;
    }

    private static AnthropicEventKind KindOf(ReadOnlySpan<byte> name) =>
        name.SequenceEqual("content_block_delta"u8) ? AnthropicEventKind.ContentBlockDelta
        : name.SequenceEqual("content_block_start"u8) ? AnthropicEventKind.ContentBlockStart
        : name.SequenceEqual("content_block_stop"u8) ? AnthropicEventKind.ContentBlockStop
        : name.SequenceEqual("message_start"u8) ? AnthropicEventKind.MessageStart
        : name.SequenceEqual("message_delta"u8) ? AnthropicEventKind.MessageDelta
        : name.SequenceEqual("message_stop"u8) ? AnthropicEventKind.MessageStop
        : name.SequenceEqual("ping"u8) ? AnthropicEventKind.Ping
        : name.SequenceEqual("error"u8) ? AnthropicEventKind.Error
        : AnthropicEventKind.Unknown;

    public static ReadOnlySpan<byte> NameOf(AnthropicEventKind kind) => kind switch
    {
        AnthropicEventKind.ContentBlockDelta => "content_block_delta"u8,
        AnthropicEventKind.ContentBlockStart => "content_block_start"u8,
        AnthropicEventKind.ContentBlockStop => "content_block_stop"u8,
        AnthropicEventKind.MessageStart => "message_start"u8,
        AnthropicEventKind.MessageDelta => "message_delta"u8,
        AnthropicEventKind.MessageStop => "message_stop"u8,
        AnthropicEventKind.Ping => "ping"u8,
        AnthropicEventKind.Error => "error"u8,
        _ => default,
    };

    /// <summary>Applies the usage of a <c>message_start</c> (in <c>message.usage</c>) or <c>message_delta</c> (in <c>usage</c>).</summary>
    public static void ApplyUsage(ref AnthropicUsageAccumulator usage, AnthropicEventKind kind, ReadOnlySpan<byte> data)
    {
        try
        {
            var reader = new Utf8JsonReader(data);
            using var doc = JsonDocument.ParseValue(ref reader);
            ApplyUsage(ref usage, kind, doc.RootElement);
        }
        catch (JsonException)
        {
            // A malformed event carries no usage we could trust; the client still gets the bytes.
        }
    }

    public static void ApplyUsage(ref AnthropicUsageAccumulator usage, AnthropicEventKind kind, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) return;
        var holder = root;
        if (kind == AnthropicEventKind.MessageStart && !(root.TryGetProperty("message"u8, out holder) && holder.ValueKind == JsonValueKind.Object)) return;
        if (holder.TryGetProperty("usage"u8, out var u)) usage.Apply(u);
    }
}
