using System.Buffers;

namespace TokenRouter.Gateway.Providers.Streaming;

/// <summary>Writes server-sent events in the two shapes the APIs use.</summary>
public static class SseWriter
{
    /// <summary>OpenAI style: <c>data: {json}</c> followed by a blank line.</summary>
    public static void WriteData(IBufferWriter<byte> output, ReadOnlySpan<byte> data)
    {
        Append(output, "data: "u8);
        Append(output, data);
        Append(output, "\n\n"u8);
    }

    /// <summary>Anthropic style: <c>event: name</c>, <c>data: {json}</c>, blank line.</summary>
    public static void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        Append(output, "event: "u8);
        Append(output, eventName);
        Append(output, "\ndata: "u8);
        Append(output, data);
        Append(output, "\n\n"u8);
    }

    public static void Append(IBufferWriter<byte> output, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(output.GetSpan(bytes.Length));
        output.Advance(bytes.Length);
    }
}
