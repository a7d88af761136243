using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// The fields of a client's object that the gateway does not model. They are not copied out at parse time: the
/// element the envelope already holds (<c>Raw</c>) is walked again when the request is written, so a request without
/// unknown fields pays one pass over a few property names per object and allocates nothing.
/// A provider of the client's own format receives them in the order received, after the fields the gateway writes.
/// </summary>
public static class UnknownFields
{
    // Names each object level models (and writes itself); everything else on that object is passed on.
    public static readonly byte[][] OpenAITextPart = [U("type"), U("text")];
    public static readonly byte[][] OpenAIToolCall = [U("id"), U("type"), U("function")];
    public static readonly byte[][] OpenAIToolCallFunction = [U("name"), U("arguments")];
    public static readonly byte[][] OpenAITool = [U("type"), U("function")];
    public static readonly byte[][] OpenAIFunction = [U("name"), U("description"), U("parameters"), U("strict")];
    public static readonly byte[][] OpenAIToolChoice = [U("type"), U("function")];
    public static readonly byte[][] OpenAIToolChoiceFunction = [U("name")];
    public static readonly byte[][] OpenAIStreamOptions = [U("include_usage")];
    public static readonly byte[][] AnthropicToolChoice = [U("type"), U("name"), U("disable_parallel_tool_use")];

    /// <summary>What a tool carries beyond name, description and schema that the model may read (BFCL's <c>response</c>).</summary>
    private static readonly byte[][] OpenAIToolNotRead = [U("type"), U("function"), U("cache_control")];
    private static readonly byte[][] AnthropicToolNotRead = [U("name"), U("description"), U("input_schema"), U("cache_control"), U("type")];
    private static readonly byte[][] AnthropicTextNotRead = [U("type"), U("text"), U("cache_control")];
    private static readonly byte[] CacheControlName = U("cache_control");

    private static byte[] U(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    /// <summary>True when <paramref name="raw"/> is an object with a property not in <paramref name="known"/>.</summary>
    public static bool Any(JsonElement raw, byte[][] known)
    {
        if (raw.ValueKind != JsonValueKind.Object) return false;
        foreach (var p in raw.EnumerateObject())
        {
            if (!IsKnown(p, known)) return true;
        }
        return false;
    }

    /// <summary>Writes the properties of <paramref name="raw"/> not in <paramref name="known"/>, in the order received.</summary>
    public static void Write(Utf8JsonWriter w, JsonElement raw, byte[][] known, bool skipCacheControl = false)
    {
        if (raw.ValueKind != JsonValueKind.Object) return;
        foreach (var p in raw.EnumerateObject())
        {
            if (IsKnown(p, known) || (skipCacheControl && p.NameEquals(CacheControlName))) continue;
            p.WriteTo(w);
        }
    }

    /// <summary>Writes the properties of the object <paramref name="name"/> of <paramref name="raw"/> not in <paramref name="known"/>.</summary>
    public static void WriteNested(Utf8JsonWriter w, JsonElement raw, ReadOnlySpan<byte> name, byte[][] known)
    {
        if (raw.ValueKind == JsonValueKind.Object && raw.TryGetProperty(name, out var inner)) Write(w, inner, known);
    }

    /// <summary>
    /// Adds to the prefix hash what a tool carries beyond the fields the hasher reads itself (name, description,
    /// schema): a model reads it as part of the tool list. Raw bytes: two clients that format such a field differently
    /// get different prefix hashes, never a shared one for different content.
    /// </summary>
    internal static void HashTool(XxHash128 hash, ToolDefinition tool, ApiFormat format)
    {
        if (tool.IsRaw || !tool.HasUnknownFields) return; // raw tools are hashed whole by the caller
        if (format == ApiFormat.OpenAI)
        {
            HashExcept(hash, tool.Raw, OpenAIToolNotRead);
            if (tool.Raw.ValueKind == JsonValueKind.Object && tool.Raw.TryGetProperty("function"u8, out var fn))
                HashExcept(hash, fn, OpenAIFunction);
        }
        else HashExcept(hash, tool.Raw, AnthropicToolNotRead);
    }

    /// <summary>Adds a system text block's unknown fields (an Anthropic client's, e.g. <c>citations</c>) to the prefix hash.</summary>
    internal static void HashSystemPart(XxHash128 hash, ContentPart part)
    {
        if (part.Kind == PartKind.Text) HashExcept(hash, part.Raw, AnthropicTextNotRead);
        else if (part.Raw.ValueKind != JsonValueKind.Undefined) hash.Append(JsonMarshal.GetRawUtf8Value(part.Raw));
    }

    internal static void HashExtra(XxHash128 hash, List<KeyValuePair<string, JsonElement>>? extra)
    {
        if (extra is null) return;
        foreach (var (name, value) in extra)
        {
            hash.Append(MemoryMarshal.AsBytes(name.AsSpan()));
            hash.Append([0xFE]);
            hash.Append(JsonMarshal.GetRawUtf8Value(value));
            hash.Append([0xFE]);
        }
    }

    private static void HashExcept(XxHash128 hash, JsonElement raw, byte[][] known)
    {
        if (raw.ValueKind != JsonValueKind.Object) return;
        foreach (var p in raw.EnumerateObject())
        {
            if (IsKnown(p, known)) continue;
            hash.Append(JsonMarshal.GetRawUtf8PropertyName(p));
            hash.Append([0xFE]);
            hash.Append(JsonMarshal.GetRawUtf8Value(p.Value));
            hash.Append([0xFE]);
        }
    }

    private static bool IsKnown(JsonProperty p, byte[][] known)
    {
        foreach (var name in known)
        {
            if (p.NameEquals(name)) return true;
        }
        return false;
    }
}
