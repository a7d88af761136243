using System.IO.Hashing;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Tests.Formats;

public sealed class JsonTextTests
{
    private static byte[] Canonical(string value)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions)) w.WriteStringValue(value);
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] Written(JsonText text)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions)) text.WriteValue(w);
        return buffer.WrittenSpan.ToArray();
    }

    private static JsonText FromToken(string json, out JsonDocument document)
    {
        document = JsonDocument.Parse(json);
        return JsonText.From(document.RootElement);
    }

    /// <summary>Every way a client might escape a string: JavaScript, .NET's default encoder, Python's ensure_ascii, all-\u.</summary>
    private static IEnumerable<string> Encodings(string value)
    {
        yield return JsonSerializer.Serialize(value, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        yield return JsonSerializer.Serialize(value);
        var ascii = new StringBuilder("\"");
        var everything = new StringBuilder("\"");
        foreach (var c in value)
        {
            ascii.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '/' => "\\/",
                '\n' => "\\n",
                _ when c < 0x20 || c > 0x7E => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
            everything.Append($"\\u{(int)c:X4}");
        }
        yield return ascii.Append('"').ToString();
        yield return everything.Append('"').ToString();
    }

    [Fact]
    public void The_canonical_writer_output_of_printable_ascii_and_short_escapes_is_recognized_as_canonical()
    {
        // Other characters (controls written as \u00XX, non-ASCII) take the decode/encode path: correct, just not copied.
        foreach (var c in Enumerable.Range(0x20, 0x7F - 0x20).Concat([8, 9, 10, 12, 13]))
        {
            var bytes = Canonical($"a{(char)c}b");
            Assert.True(JsonText.IsCanonical(bytes), $"U+{c:X4} written as {Encoding.ASCII.GetString(bytes)}");
        }
    }

    [Fact]
    public void Tokens_in_other_escapings_are_not_canonical()
    {
        Assert.False(JsonText.IsCanonical("\"it\\u0027s\""u8));
        Assert.False(JsonText.IsCanonical("\"a\\/b\""u8));
        Assert.False(JsonText.IsCanonical("\"caf\u00e9\""u8.ToArray()));
        Assert.False(JsonText.IsCanonical("\"\\u00e9\""u8));
        Assert.False(JsonText.IsCanonical("plain"u8));
        Assert.True(JsonText.IsCanonical("\"say \\\"hi\\\"\\n\\tC:\\\\x\""u8));
    }

    [Fact]
    public void Any_escaping_of_the_same_text_is_written_as_identical_bytes()
    {
        var rng = new Random(7);
        const string alphabet = "ab Z09{}[]:,\"\\/'+<>&`\n\r\t\b\f\u0001\u001f\u007f é–’😀中\u2028";
        for (var round = 0; round < 500; round++)
        {
            var value = new string(Enumerable.Range(0, rng.Next(0, 24)).Select(_ => alphabet[rng.Next(alphabet.Length)]).ToArray());
            value = RemoveLoneSurrogates(value);
            var expected = Canonical(value);
            foreach (var json in Encodings(value))
            {
                var text = FromToken(json, out var document);
                using (document)
                {
                    Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(Written(text)));
                    Assert.Equal(value, text.ToString());
                    Assert.Equal(value.Length == 0, text.IsNullOrEmpty);
                    Assert.Equal(Hash(value), Hash(text));
                }
            }
        }
    }

    [Fact]
    public void A_token_in_another_escaping_is_decoded_when_read_and_outlives_its_document()
    {
        JsonText text;
        using (var document = JsonDocument.Parse("\"it\\u0027s \\u00e9\""))
        {
            text = JsonText.From(document.RootElement);
        }
        // Decoded at parse time, so it no longer points into the (disposed) request document.
        Assert.Equal("\"it's \u00e9\"", Encoding.UTF8.GetString(Written(text)));
        Assert.Equal("it's \u00e9", text.ToString());
    }

    [Fact]
    public void An_unpaired_surrogate_escape_fails_when_accepted_not_later()
    {
        using var document = JsonDocument.Parse("\"cut \\ud83d\"");
        Assert.Throws<InvalidOperationException>(() => JsonText.From(document.RootElement));
    }

    [Fact]
    public void A_non_string_element_is_null()
    {
        using var document = JsonDocument.Parse("42");
        Assert.True(JsonText.From(document.RootElement).IsNull);
    }

    [Fact]
    public void Null_text_writes_json_null_and_is_null_or_empty()
    {
        JsonText none = (string?)null;
        Assert.True(none.IsNull);
        Assert.True(none.IsNullOrEmpty);
        Assert.Equal("null", Encoding.UTF8.GetString(Written(none)));
    }

    private static UInt128 Hash(JsonText text)
    {
        var hash = new XxHash128();
        text.AppendTo(hash);
        return hash.GetCurrentHashAsUInt128();
    }

    private static string RemoveLoneSurrogates(string s)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { sb.Append(s, i, 2); i++; }
            else if (!char.IsSurrogate(s[i])) sb.Append(s[i]);
        }
        return sb.ToString();
    }
}
