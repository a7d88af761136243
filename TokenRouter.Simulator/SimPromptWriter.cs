using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>
/// Builds the byte string a provider would tokenize. Strings are written decoded and verbatim; JSON values
/// (tool schemas, tool inputs, unknown blocks) are re-serialized compactly with their property order kept,
/// so inter-token whitespace and escape spelling vanish while key order and string content still count.
/// </summary>
internal sealed class SimPromptWriter : IDisposable
{
    // Relaxed escaping writes non-ASCII as raw UTF-8, as a tokenizer would see the decoded text.
    internal static readonly JsonWriterOptions CompactJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly SimBuffer _buffer = new();
    private readonly Utf8JsonWriter _json;

    public SimPromptWriter() => _json = new Utf8JsonWriter(_buffer, CompactJson);

    public int Length => _buffer.WrittenCount;

    public ReadOnlySpan<byte> Bytes => _buffer.WrittenSpan;

    public void Raw(ReadOnlySpan<byte> utf8) => _buffer.Write(utf8);

    /// <summary>Writes a JSON string's decoded content; other kinds are written as compact JSON, null as nothing.</summary>
    public void Text(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                var raw = JsonMarshal.GetRawUtf8Value(value);
                var inner = raw[1..^1];
                if (inner.IndexOf((byte)'\\') < 0)
                {
                    _buffer.Write(inner);
                }
                else
                {
                    // Unescape straight into the buffer; decoded UTF-8 is never longer than its escaped form.
                    var reader = new Utf8JsonReader(raw);
                    reader.Read();
                    _buffer.Advance(reader.CopyString(_buffer.GetSpan(inner.Length)));
                }

                break;
            case JsonValueKind.Null:
            case JsonValueKind.Undefined:
                break;
            default:
                Json(value);
                break;
        }
    }

    public void Text(string value)
    {
        var span = _buffer.GetSpan(Encoding.UTF8.GetMaxByteCount(value.Length));
        _buffer.Advance(Encoding.UTF8.GetBytes(value, span));
    }

    public void Json(JsonElement value)
    {
        if (TryWriteCompactRaw(JsonMarshal.GetRawUtf8Value(value)))
            return;
        _json.Reset(_buffer);
        value.WriteTo(_json);
        _json.Flush();
    }

    /// <summary>Compact JSON of an object without one top-level property (cache_control is not part of the prompt).</summary>
    public void JsonWithout(JsonElement value, string excludedProperty)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            Json(value);
            return;
        }

        _json.Reset(_buffer);
        _json.WriteStartObject();
        foreach (var property in value.EnumerateObject())
        {
            if (!property.NameEquals(excludedProperty))
                property.WriteTo(_json);
        }

        _json.WriteEndObject();
        _json.Flush();
    }

    /// <summary>
    /// Copies raw JSON that is already what the writer would produce (printable ASCII, no escapes, no
    /// whitespace between tokens); the common case costs a few vectorized scans instead of a re-serialization.
    /// </summary>
    private bool TryWriteCompactRaw(ReadOnlySpan<byte> raw)
    {
        if (raw.IndexOfAnyExceptInRange((byte)0x20, (byte)0x7E) >= 0 || raw.IndexOf((byte)'\\') >= 0)
            return false;

        // Without backslashes every quote toggles in/out of a string; whitespace is only allowed inside.
        var rest = raw;
        var inString = false;
        while (true)
        {
            var quote = rest.IndexOf((byte)'"');
            var segment = quote < 0 ? rest : rest[..quote];
            if (!inString && segment.IndexOfAny(InterTokenWhitespace) >= 0)
                return false;
            if (quote < 0)
                break;
            inString = !inString;
            rest = rest[(quote + 1)..];
        }

        _buffer.Write(raw);
        return true;
    }

    private static readonly System.Buffers.SearchValues<byte> InterTokenWhitespace = System.Buffers.SearchValues.Create(" \t\r\n"u8);

    public void Dispose()
    {
        _json.Dispose();
        _buffer.Dispose();
    }
}
