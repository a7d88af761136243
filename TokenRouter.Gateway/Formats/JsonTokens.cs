using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// Reads of one property's value with a <see cref="Utf8JsonReader"/> standing on the property's name, for the stream
/// readers that pick a few fields out of each event without building a document: the value when it has the expected
/// type, otherwise the value is skipped whole (a provider's null, or a shape this version does not know, is no error).
/// </summary>
internal static class JsonTokens
{
    /// <summary>Moves to the value; true when it is a <paramref name="expected"/> token (the reader stays on it).</summary>
    public static bool Value(ref Utf8JsonReader reader, JsonTokenType expected)
    {
        reader.Read();
        if (reader.TokenType == expected) return true;
        reader.Skip();
        return false;
    }

    public static string? String(ref Utf8JsonReader reader) => Value(ref reader, JsonTokenType.String) ? reader.GetString() : null;

    /// <summary>Sets <paramref name="value"/> when the value is a number that fits an <see cref="int"/>.</summary>
    public static void Int32(ref Utf8JsonReader reader, ref int value)
    {
        if (Value(ref reader, JsonTokenType.Number) && reader.TryGetInt32(out var read)) value = read;
    }

    /// <summary>Where the value's string token lies in the input, quotes included (copied as is, never decoded).</summary>
    public static bool StringToken(ref Utf8JsonReader reader, out int start, out int length)
    {
        if (Value(ref reader, JsonTokenType.String))
        {
            start = (int)reader.TokenStartIndex;
            length = reader.ValueSpan.Length + 2;
            return true;
        }
        start = length = 0;
        return false;
    }
}
