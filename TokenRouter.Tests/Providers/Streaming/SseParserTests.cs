using System.Buffers;
using System.Text;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;

namespace TokenRouter.Tests.Providers.Streaming;

public sealed class SseParserTests
{
    private const string Stream =
        ": keep-alive\n\n" +
        "event: message_start\ndata: {\"a\":1}\n\n" +
        "data: first line\ndata: second line\n\n" +
        "data:no space\r\n\r\n" +
        "event: ping\n\n" +
        "data: {\"b\":2}\n\n" +
        "data: [DONE]\n\n";

    private static readonly string[] Expected =
    [
        "message_start|{\"a\":1}",
        "|first line\nsecond line",
        "|no space",
        "|{\"b\":2}",
        "|[DONE]",
    ];

    [Fact]
    public void A_stream_read_at_once_yields_each_event_with_its_name_and_joined_data()
    {
        Assert.Equal(Expected, Parse(Encoding.UTF8.GetBytes(Stream), Encoding.UTF8.GetByteCount(Stream)));
    }

    [Fact]
    public void A_stream_split_at_every_byte_position_yields_the_same_events()
    {
        var bytes = Encoding.UTF8.GetBytes(Stream);
        for (var split = 1; split < bytes.Length; split++)
        {
            Assert.Equal(Expected, Parse(bytes, split));
        }
    }

    [Fact]
    public void A_stream_read_byte_by_byte_yields_the_same_events()
    {
        Assert.Equal(Expected, Parse(Encoding.UTF8.GetBytes(Stream), 1));
    }

    [Fact]
    public void An_event_passed_straight_from_the_read_is_not_overwritten_by_the_next_read()
    {
        // The parser hands a one-line event over from the read's own bytes; an event left open at the end of a read
        // must be kept, not pointed at, since the caller reuses its buffer.
        var recorder = new Recorder();
        using var parser = new SseParser();
        var buffer = Encoding.UTF8.GetBytes("data: kept\n");
        parser.Feed(buffer, recorder, new ArrayBufferWriter<byte>());
        Encoding.UTF8.GetBytes("XXXX: xxxx\n").CopyTo(buffer, 0);
        parser.Feed("\n"u8, recorder, new ArrayBufferWriter<byte>());
        Assert.Equal(["|kept"], recorder.Events);
    }

    [Fact]
    public void An_event_without_its_closing_blank_line_is_dispatched_at_the_end_of_the_stream()
    {
        var recorder = new Recorder();
        using var parser = new SseParser();
        parser.Feed("event: last\ndata: {\"end\":true}"u8, recorder, new ArrayBufferWriter<byte>());
        Assert.Empty(recorder.Events);
        parser.Flush(recorder, new ArrayBufferWriter<byte>());
        Assert.Equal(["last|{\"end\":true}"], recorder.Events);
    }

    private static List<string> Parse(byte[] bytes, int readSize)
    {
        var recorder = new Recorder();
        using var parser = new SseParser();
        var output = new ArrayBufferWriter<byte>();
        for (var i = 0; i < bytes.Length; i += readSize)
        {
            // Each read in a buffer of its own, overwritten afterwards, as a network read's would be.
            var read = bytes.AsSpan(i, Math.Min(readSize, bytes.Length - i)).ToArray();
            parser.Feed(read, recorder, output);
            Array.Fill(read, (byte)'#');
        }
        parser.Flush(recorder, output);
        return recorder.Events;
    }

    private sealed class Recorder : IStreamTranslator
    {
        public List<string> Events { get; } = [];
        public Usage Usage => default;
        public bool Finished => false;
        public bool Failed => false;

        public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output) =>
            Events.Add(Encoding.UTF8.GetString(eventName) + "|" + Encoding.UTF8.GetString(data));

        public void Complete(IBufferWriter<byte> output)
        {
        }
    }
}
