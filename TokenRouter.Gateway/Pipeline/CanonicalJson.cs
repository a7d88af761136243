using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// One serialization for JSON values: object keys in ordinal order, no insignificant whitespace, integral numbers
/// without fraction or exponent, other numbers in shortest round-trip form, strings with minimal escaping.
/// Array order is meaning, so it is kept.
/// </summary>
public static class CanonicalJson
{
    /// <summary>Minimal escaping: the provider decodes strings anyway, and fewer escapes mean fewer bytes.</summary>
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
        SkipValidation = true,
    };

    private const double MaxExactInteger = 9007199254740992d; // 2^53

    public static void Write(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                WriteObject(writer, element);
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray()) Write(writer, item);
                writer.WriteEndArray();
                break;
            case JsonValueKind.Number:
                WriteNumber(writer, element);
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }

    private static void WriteObject(Utf8JsonWriter writer, JsonElement element)
    {
        writer.WriteStartObject();
        var count = 0;
        foreach (var _ in element.EnumerateObject()) count++;
        if (count > 0)
        {
            var props = ArrayPool<JsonProperty>.Shared.Rent(count);
            try
            {
                var n = 0;
                foreach (var p in element.EnumerateObject()) props[n++] = p;
                var span = props.AsSpan(0, n);
                if (!IsSorted(span)) span.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                foreach (var p in span)
                {
                    writer.WritePropertyName(p.Name);
                    Write(writer, p.Value);
                }
            }
            finally
            {
                ArrayPool<JsonProperty>.Shared.Return(props, clearArray: true);
            }
        }
        writer.WriteEndObject();
    }

    private static bool IsSorted(ReadOnlySpan<JsonProperty> props)
    {
        for (var i = 1; i < props.Length; i++)
        {
            if (string.CompareOrdinal(props[i - 1].Name, props[i].Name) > 0) return false;
        }
        return true;
    }

    private static void WriteNumber(Utf8JsonWriter writer, JsonElement element)
    {
        if (element.TryGetInt64(out var l))
        {
            writer.WriteNumberValue(l);
            return;
        }
        var d = element.GetDouble();
        if (double.IsFinite(d) && Math.Abs(d) < MaxExactInteger && Math.Floor(d) == d)
            writer.WriteNumberValue((long)d);
        else if (double.IsFinite(d))
            writer.WriteNumberValue(d);
        else
            element.WriteTo(writer); // beyond double range: keep the digits as sent
    }

    /// <summary>Canonical bytes of a JSON value.</summary>
    public static byte[] ToBytes(JsonElement element)
    {
        using var buffer = new PooledBufferWriter(1024);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions)) Write(writer, element);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Canonical text of a JSON document held in a string (tool-call arguments). Text that is not valid JSON is
    /// returned exactly as sent: it is what the model produced, and only the client may change it.
    /// </summary>
    public static string CanonicalizeText(string json)
    {
        if (json.Length == 0) return json;
        var max = System.Text.Encoding.UTF8.GetMaxByteCount(json.Length);
        var rented = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            var len = System.Text.Encoding.UTF8.GetBytes(json, rented);
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(rented.AsMemory(0, len));
            }
            catch (JsonException)
            {
                return json;
            }
            using (doc)
            {
                using var buffer = new PooledBufferWriter(len + 16);
                using (var writer = new Utf8JsonWriter(buffer, WriterOptions)) Write(writer, doc.RootElement);
                var canonical = buffer.WrittenSpan;
                // Already canonical: keep the caller's string instance instead of allocating an equal one.
                if (canonical.SequenceEqual(rented.AsSpan(0, len))) return json;
                return System.Text.Encoding.UTF8.GetString(canonical);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
