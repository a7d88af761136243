using System.Buffers;
using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// One <see cref="Utf8JsonWriter"/> per thread for the gateway's synchronous JSON writes (the outbound request body,
/// canonical forms, a response translated to the client's format), reset for each use instead of built for it (the
/// writer and its setup, ~160 B each time). A write nested in another gets a writer of its own: a rented writer is
/// off the thread until it is given back.
/// </summary>
internal static class Utf8JsonWriterCache
{
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>Never written to: a returned writer points here instead of at the last request's buffer.</summary>
    private static readonly ArrayBufferWriter<byte> Detached = new(1);

    public static Lease Rent(IBufferWriter<byte> output)
    {
        var writer = t_writer;
        t_writer = null;
        if (writer is null) writer = new Utf8JsonWriter(output, CanonicalJson.WriterOptions);
        else writer.Reset(output);
        return new Lease(writer);
    }

    /// <summary>Flushes the writer into the output and gives it back to the thread.</summary>
    public readonly struct Lease(Utf8JsonWriter writer) : IDisposable
    {
        public Utf8JsonWriter Writer { get; } = writer;

        public void Dispose()
        {
            Writer.Flush();
            Writer.Reset(Detached);
            t_writer = Writer;
        }
    }
}
