using System.Text;
using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// Finds a <c>\uXXXX</c> escape of an unpaired UTF-16 surrogate in JSON text. System.Text.Json parses such an escape
/// (<c>"\ud800"</c>) but refuses to decode or re-write it, so a field the gateway passes on unchanged (<c>user</c>, an
/// unknown field, Anthropic's <c>metadata.user_id</c>) would fail only when the outbound request is written. Checking
/// the whole body once, at parse time, turns every such case into one 400 before any stage runs.
/// </summary>
public static class SurrogateEscapes
{
    /// <summary>The byte offset of the first unpaired surrogate escape, or -1. <paramref name="json"/> must already
    /// have parsed as JSON: backslashes then occur only inside strings, each starting an escape.</summary>
    public static int FindUnpaired(ReadOnlySpan<byte> json)
    {
        var offset = 0;
        while (true)
        {
            var at = json[offset..].IndexOf((byte)'\\');
            if (at < 0) return -1;
            var i = offset + at;
            if (i + 1 >= json.Length) return -1;
            if (json[i + 1] != (byte)'u')
            {
                offset = i + 2; // any other escape is two bytes ("\\" included, so it never reads as the start of "\u")
                continue;
            }
            var unit = Hex4(json, i + 2);
            if (unit is >= 0xDC00 and <= 0xDFFF) return i; // a low surrogate with no high one before it
            if (unit is >= 0xD800 and <= 0xDBFF)
            {
                var next = i + 6;
                if (next + 1 >= json.Length || json[next] != (byte)'\\' || json[next + 1] != (byte)'u'
                    || Hex4(json, next + 2) is < 0xDC00 or > 0xDFFF) return i;
                offset = next + 6;
                continue;
            }
            offset = i + 6;
        }
    }

    /// <summary>
    /// The path of the string (value or property name) that holds byte <paramref name="offset"/> — OpenAI's
    /// <c>messages[2].content</c> or, <paramref name="dotted"/>, Anthropic's <c>messages.2.content</c>. Walks the document
    /// once more, so it is only for a request that already failed.
    /// </summary>
    public static string PathAt(ReadOnlySpan<byte> json, int offset, bool dotted)
    {
        var frames = new List<(bool IsArray, int Index, string? Name)>();
        var reader = new Utf8JsonReader(json);
        while (reader.Read())
        {
            var token = reader.TokenType;
            var covers = reader.TokenStartIndex <= offset && offset < reader.TokenStartIndex + reader.ValueSpan.Length + 2;
            if (token == JsonTokenType.PropertyName)
            {
                var name = Encoding.UTF8.GetString(reader.ValueSpan); // raw: decoding is what fails
                frames[^1] = (false, 0, name);
                if (covers) return Build(frames, dotted);
                continue;
            }
            if (token is JsonTokenType.EndObject or JsonTokenType.EndArray)
            {
                frames.RemoveAt(frames.Count - 1);
                continue;
            }
            if (frames.Count > 0 && frames[^1].IsArray) frames[^1] = (true, frames[^1].Index + 1, null);
            if (token is JsonTokenType.StartObject or JsonTokenType.StartArray) frames.Add((token == JsonTokenType.StartArray, -1, null));
            else if (token == JsonTokenType.String && covers) return Build(frames, dotted);
        }
        return "";

        static string Build(List<(bool IsArray, int Index, string? Name)> frames, bool dotted)
        {
            var path = new StringBuilder();
            foreach (var (isArray, index, name) in frames)
            {
                if (isArray) path.Append(dotted ? "." + index : "[" + index + "]");
                else if (name is not null) path.Append(path.Length == 0 ? name : "." + name);
            }
            return path.ToString();
        }
    }

    private static int Hex4(ReadOnlySpan<byte> json, int start)
    {
        if (start + 4 > json.Length) return -1;
        var value = 0;
        for (var k = start; k < start + 4; k++)
        {
            var digit = HexDigit(json[k]);
            if (digit < 0) return -1;
            value = (value << 4) | digit;
        }
        return value;
    }

    private static int HexDigit(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
