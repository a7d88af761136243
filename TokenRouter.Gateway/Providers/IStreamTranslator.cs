using System.Buffers;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Providers;

/// <summary>
/// Turns a provider's SSE events into the client's SSE events, one upstream event at a time (never buffering the
/// stream), and accumulates the usage the provider reported on the way.
/// </summary>
public interface IStreamTranslator
{
    /// <summary>Handles one upstream event. <paramref name="eventName"/> is empty when the event had no <c>event:</c> line.
    /// Writes zero or more complete client SSE events (terminated by a blank line) into <paramref name="output"/>.</summary>
    void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output);

    /// <summary>Called once when the upstream stream ended normally; writes any closing events the client still needs.</summary>
    void Complete(IBufferWriter<byte> output);

    /// <summary>Usage reported by the provider so far (complete after the provider's final usage event).</summary>
    Usage Usage { get; }

    /// <summary>True once the provider's own end-of-stream marker arrived (<c>[DONE]</c> or <c>message_stop</c>).</summary>
    bool Finished { get; }

    /// <summary>True once the provider reported an error mid-stream; it was already passed on to the client.</summary>
    bool Failed { get; }
}
