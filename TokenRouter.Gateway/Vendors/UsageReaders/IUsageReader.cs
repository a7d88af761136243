using System.Text.Json;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Vendors.UsageReaders;

/// <summary>
/// Reads one vendor's <c>usage</c> object into the normalized <see cref="Usage"/>. One sealed implementation per
/// vendor dialect, each a stateless <c>Instance</c>, so reading usage on the hot path allocates nothing of its own.
/// </summary>
public interface IUsageReader
{
    /// <summary>The usage of a non-streaming response, from its root object; empty when the root is not an object or has
    /// no <c>usage</c> object.</summary>
    Usage ReadResponse(JsonElement responseRoot);

    /// <summary>Reads the vendor's <c>usage</c> object itself; empty when it is not an object.</summary>
    Usage ReadUsage(JsonElement usage);

    /// <summary>
    /// Reads the usage of a whole non-streaming response body in one validating pass: true when the body is one valid
    /// JSON object, with empty usage when it has no top-level <c>usage</c> object; false otherwise, with whatever usage
    /// object came before the point where the body proved invalid.
    /// </summary>
    bool TryRead(ReadOnlySpan<byte> body, out Usage usage);
}
