using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// A text value of the request: a .NET string, or the client's own JSON string token kept until a stage needs the
/// string. Most text a model reads (system prompts, turns, tool results) passes through the gateway unchanged; when
/// the client's escaping is already the one the outbound writer produces, the token is copied byte for byte instead
/// of being decoded to UTF-16 and re-encoded — the same bytes without the two transcodings. A token in any other
/// escaping (<c>\u0027</c>, <c>\/</c>, non-ASCII) is decoded when read (<see cref="From"/>), so the outgoing bytes
/// never depend on how the client escaped, and a bad escape still fails in the parse. (Rebuilding such tokens as
/// canonical UTF-8 instead was measured slower: System.Text.Encodings.Web escapes UTF-8 input rune by rune.)
/// </summary>
public readonly struct JsonText
{
    private readonly string? _text;
    /// <summary>A string token whose bytes are canonical, or default.</summary>
    private readonly JsonElement _token;

    private JsonText(string? text, JsonElement token) => (_text, _token) = (text, token);

    public static implicit operator JsonText(string? text) => new(text, default);

    /// <summary>
    /// The value of a string element: its token when its bytes are canonical (copied later, cannot fail to decode),
    /// else its decoded value, decoded now. Anything but a string is null.
    /// </summary>
    public static JsonText From(JsonElement element) =>
        element.ValueKind != JsonValueKind.String ? default
        : IsCanonical(JsonMarshal.GetRawUtf8Value(element)) ? new JsonText(null, element)
        : new JsonText(element.GetString(), default);

    public bool IsNull => _text is null && _token.ValueKind != JsonValueKind.String;

    /// <summary>True when the value is empty or null; never decodes.</summary>
    public bool IsNullOrEmpty => _text is not null ? _text.Length == 0 : IsNull || JsonMarshal.GetRawUtf8Value(_token).Length <= 2;

    /// <summary>
    /// The value's size in UTF-8 bytes, approximately (a token's bytes as sent, escapes included; a string's UTF-16
    /// length): enough to estimate its tokens without decoding it. 0 for null.
    /// </summary>
    public int ApproximateUtf8Length =>
        _text?.Length ?? (_token.ValueKind == JsonValueKind.String ? JsonMarshal.GetRawUtf8Value(_token).Length - 2 : 0);

    /// <summary>The value (decoding a token allocates); null when there is none.</summary>
    public override string? ToString() => _text ?? (IsNull ? null : _token.GetString());

    public void Write(Utf8JsonWriter writer, ReadOnlySpan<byte> name)
    {
        writer.WritePropertyName(name);
        WriteValue(writer);
    }

    /// <summary>Writes the value (JSON null when there is none).</summary>
    public void WriteValue(Utf8JsonWriter writer)
    {
        if (_token.ValueKind == JsonValueKind.String) writer.WriteRawValue(JsonMarshal.GetRawUtf8Value(_token), skipInputValidation: true);
        else writer.WriteStringValue(_text);
    }

    /// <summary>
    /// Adds the value's canonical UTF-8 token (as <see cref="CanonicalJson.WriterOptions"/> writes it) to a hash, so equal
    /// values hash equally however they were escaped. No-op for null.
    /// </summary>
    public void AppendTo(XxHash128 hash)
    {
        if (_token.ValueKind == JsonValueKind.String)
        {
            hash.Append(JsonMarshal.GetRawUtf8Value(_token));
            return;
        }
        if (_text is null) return;
        using var buffer = new PooledBufferWriter(_text.Length + 16);
        using (var writer = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions)) writer.WriteStringValue(_text);
        hash.Append(buffer.WrittenSpan);
    }

    /// <summary>
    /// True when a string token (quotes included) that the parser has already validated is byte for byte what the
    /// canonical writer produces for its value: printable ASCII only, and none of the escapes the writer never uses
    /// (<c>\u</c>, <c>\/</c>). Three vectorized scans; a literal backslash before a <c>u</c> or <c>/</c> (<c>"C:\\users"</c>)
    /// reads as non-canonical too, which only sends that string the decode/encode way.
    /// </summary>
    public static bool IsCanonical(ReadOnlySpan<byte> raw)
    {
        if (raw.Length < 2 || raw[0] != (byte)'"' || raw[^1] != (byte)'"') return false;
        var inner = raw[1..^1];
        return inner.IndexOfAnyExceptInRange((byte)0x20, (byte)0x7E) < 0
            && inner.IndexOf("\\u"u8) < 0
            && inner.IndexOf("\\/"u8) < 0;
    }
}
