using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Vendors.OpenAI;

/// <summary>
/// OpenAI-format provider → OpenAI client: events pass through byte for byte, except the usage-only chunk the
/// gateway asked for on the client's behalf, which is hidden from a client that did not ask for it.
/// </summary>
public sealed class OpenAIStreamPassthrough(bool clientWantsUsage) : IStreamTranslator
{
    private Usage _usage;

    public Usage Usage => _usage;
    public bool Finished { get; private set; }
    public bool Failed { get; private set; }

    public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (data.SequenceEqual("[DONE]"u8))
        {
            Finished = true;
            SseWriter.WriteData(output, data);
            return;
        }
        if (data.StartsWith("{\"error\""u8)) Failed = true;
        if (HasUsageObject(data) && TryReadUsage(data, out var usage, out var choicesEmpty))
        {
            _usage = usage;
            if (choicesEmpty && !clientWantsUsage) return;
        }
        SseWriter.WriteData(output, data);
    }

    public void Complete(IBufferWriter<byte> output)
    {
    }

    /// <summary>Cheap pre-check so only the usage chunk is parsed: <c>"usage":null</c> rides on every chunk.</summary>
    internal static bool HasUsageObject(ReadOnlySpan<byte> data)
    {
        var i = data.LastIndexOf("\"usage\""u8);
        if (i < 0) return false;
        var rest = data[(i + 7)..].TrimStart(" \t:"u8);
        return rest.Length > 0 && rest[0] == (byte)'{';
    }

    internal static bool TryReadUsage(ReadOnlySpan<byte> data, out Usage usage, out bool choicesEmpty)
    {
        usage = default;
        choicesEmpty = false;
        try
        {
            // One pass over the event; only its usage object becomes a document.
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            var found = false;
            choicesEmpty = true;
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 1) continue;
                if (reader.ValueTextEquals("usage"u8))
                {
                    if (!JsonTokens.Value(ref reader, JsonTokenType.StartObject)) continue;
                    using var u = JsonDocument.ParseValue(ref reader);
                    usage = OpenAIUsageReader.Instance.ReadUsage(u.RootElement);
                    found = true;
                }
                else if (reader.ValueTextEquals("choices"u8))
                {
                    if (!JsonTokens.Value(ref reader, JsonTokenType.StartArray)) continue;
                    reader.Read();
                    choicesEmpty = reader.TokenType == JsonTokenType.EndArray;
                    if (!choicesEmpty) reader.Skip();
                }
            }
            if (!found) choicesEmpty = false;
            return found;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
