using System.Buffers;
using System.Text;
using System.Text.Json;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Tests.Vendors;

/// <summary>Helpers for the golden tests: parse requests the way the gateway does and compare JSON byte for byte.</summary>
internal static class ProviderTestJson
{
    public static Envelope ParseOpenAI(string json) => OpenAIInboundAdapter.Parse(Encoding.UTF8.GetBytes(json));

    public static Envelope ParseAnthropic(string json) => AnthropicInboundAdapter.Parse(Encoding.UTF8.GetBytes(json));

    /// <summary>The expected JSON without insignificant whitespace; key order and string contents are kept.</summary>
    public static string Compact(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions)) doc.RootElement.WriteTo(w);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string Write(IOutboundAdapter adapter, Envelope envelope, string upstreamModel)
    {
        var buffer = new ArrayBufferWriter<byte>();
        adapter.WriteRequest(envelope, upstreamModel, buffer);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static JsonDocument Parse(string json) => JsonDocument.Parse(json);
}

/// <summary>A clock stopped at one instant, so OpenAI's <c>created</c> is part of the golden output.</summary>
internal sealed class FixedTime(long unixSeconds) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeSeconds(unixSeconds);
}
