using System.Buffers;
using System.Runtime.CompilerServices;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Providers.Streaming;

/// <summary>
/// Incremental server-sent-events parser: feed it bytes as they arrive from the provider and it hands each
/// complete event to a translator. Keeps only the unfinished line and the current event's data between reads.
/// An event whose one data line and closing blank line arrive in the same read — nearly every event — goes to the
/// translator straight from the read's bytes: nothing is copied, and the buffers for the other case are rented
/// only when one is needed.
/// </summary>
public sealed class SseParser : IDisposable
{
    private PooledBufferWriter? _carry;
    private PooledBufferWriter? _data;
    private EventName _eventName;
    private int _eventNameLength;
    private bool _hasData;

    /// <summary>Parses <paramref name="chunk"/>; every completed event goes to <paramref name="translator"/>, which writes into <paramref name="output"/>.</summary>
    public void Feed(ReadOnlySpan<byte> chunk, IStreamTranslator translator, IBufferWriter<byte> output)
    {
        // The current event's only data line so far, still in chunk (not yet copied into _data).
        ReadOnlySpan<byte> inline = default;
        var hasInline = false;
        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            if (newline < 0)
            {
                (_carry ??= new PooledBufferWriter(1024)).Write(chunk);
                break;
            }
            if (_carry is { WrittenCount: > 0 } carry)
            {
                carry.Write(chunk[..newline]);
                ProcessLine(carry.WrittenSpan, fromChunk: false, ref inline, ref hasInline, translator, output);
                carry.Clear();
            }
            else
            {
                ProcessLine(chunk[..newline], fromChunk: true, ref inline, ref hasInline, translator, output);
            }
            chunk = chunk[(newline + 1)..];
        }
        // The event goes on in the next read: its data line must outlive this chunk.
        if (hasInline) KeepData(inline);
    }

    /// <summary>The provider closed the stream: dispatch an event that lacked its final blank line.</summary>
    public void Flush(IStreamTranslator translator, IBufferWriter<byte> output)
    {
        ReadOnlySpan<byte> inline = default;
        var hasInline = false;
        if (_carry is { WrittenCount: > 0 } carry)
        {
            ProcessLine(carry.WrittenSpan, fromChunk: false, ref inline, ref hasInline, translator, output);
            carry.Clear();
        }
        Dispatch(inline, hasInline, translator, output);
    }

    private void ProcessLine(ReadOnlySpan<byte> line, bool fromChunk, ref ReadOnlySpan<byte> inline, ref bool hasInline,
        IStreamTranslator translator, IBufferWriter<byte> output)
    {
        if (!line.IsEmpty && line[^1] == (byte)'\r') line = line[..^1];
        if (line.IsEmpty)
        {
            Dispatch(inline, hasInline, translator, output);
            hasInline = false;
            return;
        }
        if (line[0] == (byte)':') return; // comment / keep-alive

        var colon = line.IndexOf((byte)':');
        var field = colon < 0 ? line : line[..colon];
        var value = colon < 0 ? [] : line[(colon + 1)..];
        if (!value.IsEmpty && value[0] == (byte)' ') value = value[1..];

        if (field.SequenceEqual("data"u8))
        {
            if (hasInline)
            {
                // A second data line: the event's data is now the lines joined, which needs a buffer after all.
                KeepData(inline);
                hasInline = false;
            }
            if (_hasData)
            {
                _data!.Write("\n"u8);
                _data.Write(value);
            }
            else if (fromChunk)
            {
                inline = value;
                hasInline = true;
            }
            else
            {
                KeepData(value);
            }
        }
        else if (field.SequenceEqual("event"u8))
        {
            _eventNameLength = Math.Min(value.Length, EventName.Length);
            value[.._eventNameLength].CopyTo(_eventName);
        }
    }

    private void KeepData(ReadOnlySpan<byte> value)
    {
        (_data ??= new PooledBufferWriter(1024)).Write(value);
        _hasData = true;
    }

    private void Dispatch(ReadOnlySpan<byte> inline, bool hasInline, IStreamTranslator translator, IBufferWriter<byte> output)
    {
        ReadOnlySpan<byte> name = _eventName;
        if (hasInline) translator.OnEvent(name[.._eventNameLength], inline, output);
        else if (_hasData) translator.OnEvent(name[.._eventNameLength], _data!.WrittenSpan, output);
        _data?.Clear();
        _hasData = false;
        _eventNameLength = 0;
    }

    public void Dispose()
    {
        _carry?.Dispose();
        _data?.Dispose();
    }

    /// <summary>The current event's name, kept inline: a parser is one object.</summary>
    [InlineArray(Length)]
    private struct EventName
    {
        public const int Length = 64;
        private byte _first;
    }
}
