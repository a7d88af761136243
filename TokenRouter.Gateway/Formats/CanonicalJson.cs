using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

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
                if (!IsSorted(span)) span.Sort(CompareNames);
                foreach (var p in span)
                {
                    var raw = JsonMarshal.GetRawUtf8PropertyName(p);
                    if (IsPlain(raw)) writer.WritePropertyName(raw);
                    else writer.WritePropertyName(p.Name);
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
            if (CompareNames(props[i - 1], props[i]) > 0) return false;
        }
        return true;
    }

    /// <summary>
    /// Ordinal order of the names. A name that is plain ASCII (no escapes) is compared and written as its raw bytes:
    /// for ASCII, byte order is UTF-16 ordinal order, and a name materialized as a string for each comparison and write
    /// was most of the strings the canonical form allocated.
    /// </summary>
    private static int CompareNames(JsonProperty a, JsonProperty b)
    {
        var x = JsonMarshal.GetRawUtf8PropertyName(a);
        var y = JsonMarshal.GetRawUtf8PropertyName(b);
        return IsPlain(x) && IsPlain(y) ? x.SequenceCompareTo(y) : string.CompareOrdinal(a.Name, b.Name);
    }

    private static bool IsPlain(ReadOnlySpan<byte> raw) => Ascii.IsValid(raw) && !raw.Contains((byte)'\\');

    private static void WriteNumber(Utf8JsonWriter writer, JsonElement element)
    {
        if (element.TryGetInt64(out var l))
        {
            writer.WriteNumberValue(l);
            return;
        }
        // Everything else is normalized from its digits, never through a double: a double would round a 20-digit id
        // or a long decimal into another number, and the model reads these numbers.
        var raw = JsonMarshal.GetRawUtf8Value(element);
        Span<byte> normalized = raw.Length <= 200 ? stackalloc byte[256] : new byte[raw.Length + 64];
        if (TryNormalizeNumber(raw, normalized, out var written))
            writer.WriteRawValue(normalized[..written], skipInputValidation: true);
        else
            element.WriteTo(writer); // an exponent beyond 9 digits: keep the number as sent
    }

    /// <summary>
    /// One text per numeric value: no leading or trailing zeros, no sign on zero; integers up to 21 digits in full,
    /// other values as plain decimals down to 1e-6 and in exponent form beyond (JavaScript's layout, all digits kept).
    /// </summary>
    private static bool TryNormalizeNumber(ReadOnlySpan<byte> raw, Span<byte> output, out int written)
    {
        written = 0;
        var i = 0;
        var negative = raw[0] == '-';
        if (negative) i++;
        var intStart = i;
        while (i < raw.Length && char.IsAsciiDigit((char)raw[i])) i++;
        var intDigits = raw[intStart..i];
        ReadOnlySpan<byte> fracDigits = default;
        if (i < raw.Length && raw[i] == '.')
        {
            var fracStart = ++i;
            while (i < raw.Length && char.IsAsciiDigit((char)raw[i])) i++;
            fracDigits = raw[fracStart..i];
        }
        long exponent = 0;
        if (i < raw.Length && (raw[i] | 0x20) == 'e')
        {
            i++;
            var negativeExponent = false;
            if (i < raw.Length && raw[i] is (byte)'+' or (byte)'-') negativeExponent = raw[i++] == '-';
            var start = i;
            while (i < raw.Length && char.IsAsciiDigit((char)raw[i]))
            {
                if (i - start >= 9) return false;
                exponent = exponent * 10 + (raw[i++] - '0');
            }
            if (negativeExponent) exponent = -exponent;
        }
        if (i != raw.Length) return false;

        // The significant digits: first to last non-zero, across the integer and fraction parts.
        var total = intDigits.Length + fracDigits.Length;
        Span<byte> all = total <= 256 ? stackalloc byte[total] : new byte[total];
        intDigits.CopyTo(all);
        fracDigits.CopyTo(all[intDigits.Length..]);
        var first = all.IndexOfAnyExcept((byte)'0');
        if (first < 0)
        {
            output[written++] = (byte)'0';
            return true;
        }
        var last = all.LastIndexOfAnyExcept((byte)'0');
        var digits = all[first..(last + 1)];
        var scale = exponent - fracDigits.Length + (total - 1 - last); // value = digits × 10^scale
        var point = digits.Length + scale;                             // the decimal point follows this many digits

        if (negative) output[written++] = (byte)'-';
        if (scale >= 0 && point <= 21)
        {
            Append(output, ref written, digits);
            for (var z = 0; z < scale; z++) output[written++] = (byte)'0';
        }
        else if (scale < 0 && point > 0)
        {
            Append(output, ref written, digits[..(int)point]);
            output[written++] = (byte)'.';
            Append(output, ref written, digits[(int)point..]);
        }
        else if (scale < 0 && point > -6)
        {
            output[written++] = (byte)'0';
            output[written++] = (byte)'.';
            for (var z = 0; z < -point; z++) output[written++] = (byte)'0';
            Append(output, ref written, digits);
        }
        else
        {
            output[written++] = digits[0];
            if (digits.Length > 1)
            {
                output[written++] = (byte)'.';
                Append(output, ref written, digits[1..]);
            }
            output[written++] = (byte)'e';
            output[written++] = point - 1 < 0 ? (byte)'-' : (byte)'+';
            System.Buffers.Text.Utf8Formatter.TryFormat(Math.Abs(point - 1), output[written..], out var n);
            written += n;
        }
        return true;
    }

    private static void Append(Span<byte> output, ref int written, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(output[written..]);
        written += bytes.Length;
    }

    /// <summary>Canonical bytes of a JSON value.</summary>
    public static byte[] ToBytes(JsonElement element)
    {
        using var buffer = new PooledBufferWriter(1024);
        using (var lease = Utf8JsonWriterCache.Rent(buffer)) Write(lease.Writer, element);
        return buffer.WrittenSpan.ToArray();
    }

    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;

    /// <summary>
    /// Canonical text of a JSON document held in a string (tool-call arguments). Text that is not valid JSON is
    /// returned exactly as sent: it is what the model produced, and only the client may change it. Remembered per
    /// string instance: the arguments of a session's history come from <see cref="JsonStringCache"/>, the same
    /// instances on every turn, and would otherwise be parsed and rewritten again on every turn. Dies with its string.
    /// </summary>
    public static string CanonicalizeText(string json)
    {
        if (json.Length == 0) return json;
        if (json.Length > JsonStringCache.MaxValueBytes) return Canonicalize(json); // not a shared instance: nothing to remember it by
        if (Canonical.TryGetValue(json, out var known)) return known;
        var canonical = Canonicalize(json);
        Canonical.AddOrUpdate(json, canonical);
        return canonical;
    }

    private static readonly ConditionalWeakTable<string, string> Canonical = new();

    private static string Canonicalize(string json)
    {
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
                // Every tool call of every request comes through here: one writer and buffer per thread, reset each time.
                var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
                buffer.ResetWrittenCount();
                try
                {
                    using var lease = Utf8JsonWriterCache.Rent(buffer);
                    Write(lease.Writer, doc.RootElement);
                }
                catch (InvalidOperationException)
                {
                    return json; // a string escape System.Text.Json cannot decode (an unpaired surrogate): left as sent
                }
                finally
                {
                    if (buffer.Capacity > 256 * 1024) t_buffer = null; // do not keep a rare huge argument's buffer per thread
                }
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
