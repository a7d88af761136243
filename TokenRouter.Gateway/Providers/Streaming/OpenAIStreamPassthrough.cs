using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Providers.Streaming;

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
            var reader = new Utf8JsonReader(data);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (!root.TryGetProperty("usage", out var u) || u.ValueKind != JsonValueKind.Object) return false;
            usage = OpenAIAdapter.ReadUsageObject(u);
            choicesEmpty = !root.TryGetProperty("choices", out var c) || c.ValueKind != JsonValueKind.Array || c.GetArrayLength() == 0;
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
