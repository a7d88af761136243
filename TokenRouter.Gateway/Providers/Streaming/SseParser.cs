using System.Buffers;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Providers.Streaming;

/// <summary>
/// Incremental server-sent-events parser: feed it bytes as they arrive from the provider and it hands each
/// complete event to a translator. Keeps only the unfinished line and the current event's data between reads.
/// </summary>
public sealed class SseParser : IDisposable
{
    private readonly PooledBufferWriter _carry = new(1024);
    private readonly PooledBufferWriter _data = new(1024);
    private readonly byte[] _eventName = new byte[64];
    private int _eventNameLength;
    private bool _hasData;

    /// <summary>Parses <paramref name="chunk"/>; every completed event goes to <paramref name="translator"/>, which writes into <paramref name="output"/>.</summary>
    public void Feed(ReadOnlySpan<byte> chunk, IStreamTranslator translator, IBufferWriter<byte> output)
    {
        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            if (newline < 0)
            {
                _carry.Write(chunk);
                return;
            }
            if (_carry.WrittenCount > 0)
            {
                _carry.Write(chunk[..newline]);
                ProcessLine(_carry.WrittenSpan, translator, output);
                _carry.Clear();
            }
            else
            {
                ProcessLine(chunk[..newline], translator, output);
            }
            chunk = chunk[(newline + 1)..];
        }
    }

    /// <summary>The provider closed the stream: dispatch an event that lacked its final blank line.</summary>
    public void Flush(IStreamTranslator translator, IBufferWriter<byte> output)
    {
        if (_carry.WrittenCount > 0)
        {
            ProcessLine(_carry.WrittenSpan, translator, output);
            _carry.Clear();
        }
        Dispatch(translator, output);
    }

    private void ProcessLine(ReadOnlySpan<byte> line, IStreamTranslator translator, IBufferWriter<byte> output)
    {
        if (!line.IsEmpty && line[^1] == (byte)'\r') line = line[..^1];
        if (line.IsEmpty)
        {
            Dispatch(translator, output);
            return;
        }
        if (line[0] == (byte)':') return; // comment / keep-alive

        var colon = line.IndexOf((byte)':');
        var field = colon < 0 ? line : line[..colon];
        var value = colon < 0 ? [] : line[(colon + 1)..];
        if (!value.IsEmpty && value[0] == (byte)' ') value = value[1..];

        if (field.SequenceEqual("data"u8))
        {
            if (_hasData) _data.Write("\n"u8);
            _data.Write(value);
            _hasData = true;
        }
        else if (field.SequenceEqual("event"u8))
        {
            _eventNameLength = Math.Min(value.Length, _eventName.Length);
            value[.._eventNameLength].CopyTo(_eventName);
        }
    }

    private void Dispatch(IStreamTranslator translator, IBufferWriter<byte> output)
    {
        if (_hasData) translator.OnEvent(_eventName.AsSpan(0, _eventNameLength), _data.WrittenSpan, output);
        _data.Clear();
        _hasData = false;
        _eventNameLength = 0;
    }

    public void Dispose()
    {
        _carry.Dispose();
        _data.Dispose();
    }
}
