using System.Buffers;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;

namespace TokenRouter.Gateway.Vendors;

/// <summary>
/// Reads the usage out of a provider's stream without producing output: the upstream pump meters the call
/// itself, whoever is (still) listening. Counts events so a stream cut short before its usage arrived can be
/// estimated (about one token per delta event) instead of billed as nothing.
/// </summary>
public sealed class UsageScanner(ApiFormat providerFormat) : IStreamTranslator
{
    private readonly IStreamTranslator _inner = StreamTranslators.Create(providerFormat, providerFormat, clientWantsUsage: true, clientModel: "");

    public int Events { get; private set; }
    public Usage Usage => _inner.Usage;
    public bool Finished => _inner.Finished;
    public bool Failed => _inner.Failed;

    /// <summary>True once an event's data was neither a JSON object nor OpenAI's <c>[DONE]</c>: the stream is not one
    /// the provider's API sends, whatever its end looks like.</summary>
    public bool Malformed { get; private set; }

    public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        Events++;
        if (!SseEvents.IsJsonObject(data) && !data.SequenceEqual("[DONE]"u8)) Malformed = true;
        _inner.OnEvent(eventName, data, DiscardingBufferWriter.ForThisThread);
    }

    public void Complete(IBufferWriter<byte> output)
    {
    }

    /// <summary>An <see cref="IBufferWriter{T}"/> that forgets what is written, reusing one scratch buffer per thread: a
    /// translator writes into it only within one synchronous <see cref="OnEvent"/> call, so scanners on the same thread
    /// can share it (one 4 KB buffer per stream was a third of a streamed request's allocation).</summary>
    private sealed class DiscardingBufferWriter : IBufferWriter<byte>
    {
        [ThreadStatic]
        private static DiscardingBufferWriter? _forThisThread;

        private const int MaxKept = 64 * 1024;
        private byte[] _scratch = new byte[4096];

        public static DiscardingBufferWriter ForThisThread => _forThisThread ??= new DiscardingBufferWriter();

        public void Advance(int count)
        {
        }

        public Memory<byte> GetMemory(int sizeHint = 0) => Scratch(sizeHint);

        public Span<byte> GetSpan(int sizeHint = 0) => Scratch(sizeHint).Span;

        private Memory<byte> Scratch(int sizeHint)
        {
            if (sizeHint <= _scratch.Length) return _scratch;
            // A huge event gets a buffer of its own, so the thread does not keep it for good.
            if (sizeHint > MaxKept) return new byte[sizeHint];
            _scratch = new byte[Math.Min(MaxKept, Math.Max(sizeHint, _scratch.Length * 2))];
            return _scratch;
        }
    }
}
