using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Vendors.Anthropic;

/// <summary>The content blocks of a message as Anthropic's Messages API takes them: text, images, tool use and results,
/// and the blocks an Anthropic client sent that the gateway passes on as they came.</summary>
public sealed partial class AnthropicAdapter
{
    private static void WriteMessageBlocks(Utf8JsonWriter w, Message m, bool native)
    {
        var remaining = CountBlocks(m, native);
        var breakpoint = m.CacheBreakpoint;

        if (m.Role == MessageRole.Tool)
        {
            WriteToolResultFromMessage(w, m, native, breakpoint);
            return;
        }
        if (m.HasText && (native || !m.TextValue.IsNullOrEmpty))
            WriteTextBlock(w, m.TextValue, default, --remaining == 0 ? breakpoint : null, native);
        if (m.Parts is { } parts)
        {
            foreach (var part in parts)
            {
                if (!PartRenders(part, native)) continue;
                remaining--;
                var cache = part.CacheControl ?? (remaining == 0 ? breakpoint : null);
                WritePart(w, part, cache, native);
            }
        }
        if (m.ToolCalls is { } calls)
        {
            foreach (var call in calls)
            {
                w.WriteStartObject();
                w.WriteString("type"u8, "tool_use"u8);
                WriteToolId(w, "id"u8, call.Id);
                w.WriteString("name"u8, call.Name);
                WriteInput(w, call.Arguments);
                WriteCacheControl(w, --remaining == 0 ? breakpoint : null);
                w.WriteEndObject();
            }
        }
    }

    private static void WritePart(Utf8JsonWriter w, ContentPart part, CacheControl? cache, bool native)
    {
        switch (part.Kind)
        {
            case PartKind.Text:
                WriteTextBlock(w, part.HasText ? part.TextValue : "", part.Raw, cache, native);
                break;
            case PartKind.Image:
                WriteImage(w, part, cache, native);
                break;
            case PartKind.ToolUse:
                w.WriteStartObject();
                w.WriteString("type"u8, "tool_use"u8);
                WriteToolId(w, "id"u8, part.Id ?? "");
                w.WriteString("name"u8, part.Name);
                WriteInput(w, part.Arguments);
                if (native) WriteOtherProperties(w, part.Raw, "type"u8, "id"u8, "name"u8, "input"u8);
                WriteCacheControl(w, cache);
                w.WriteEndObject();
                break;
            case PartKind.ToolResult:
                w.WriteStartObject();
                w.WriteString("type"u8, "tool_result"u8);
                WriteToolId(w, "tool_use_id"u8, part.Id ?? "");
                if (part.Content is { } blocks)
                {
                    w.WriteStartArray("content"u8);
                    foreach (var block in blocks) WritePart(w, block, block.CacheControl, native);
                    w.WriteEndArray();
                }
                else if (part.HasText) part.TextValue.Write(w, "content"u8);
                // An Anthropic client's is_error (even false) rides along with its other fields.
                if (native && part.Raw.ValueKind == JsonValueKind.Object) WriteOtherProperties(w, part.Raw, "type"u8, "tool_use_id"u8, "content"u8);
                else if (part.IsError) w.WriteBoolean("is_error"u8, true);
                WriteCacheControl(w, cache);
                w.WriteEndObject();
                break;
            default:
                if (native)
                {
                    WriteRawBlock(w, part.Raw, cache);
                    break;
                }
                // Only a refusal reaches here (PartRenders): the model's own words, kept as text.
                WriteTextBlock(w, RefusalText(part)!, default, cache, native: false);
                break;
        }
    }

    /// <summary>The text of an OpenAI <c>refusal</c> part; any other part Anthropic cannot take is a client error.</summary>
    private static string? RefusalText(ContentPart part)
    {
        var raw = part.Raw;
        string? type = raw.ValueKind == JsonValueKind.Object && raw.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type == "refusal")
            return raw.TryGetProperty("refusal", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        throw ApiError.InvalidRequest($"Content part type '{type}' cannot be sent to an Anthropic model.", "messages");
    }

    private static void WriteToolResultFromMessage(Utf8JsonWriter w, Message m, bool native, CacheControl? cache)
    {
        w.WriteStartObject();
        w.WriteString("type"u8, "tool_result"u8);
        WriteToolId(w, "tool_use_id"u8, m.ToolCallId ?? "");
        if (m.Parts is { } parts)
        {
            w.WriteStartArray("content"u8);
            foreach (var part in parts)
            {
                if (!PartRenders(part, native)) continue;
                WritePart(w, part, part.CacheControl, native);
            }
            w.WriteEndArray();
        }
        else if (!m.TextValue.IsNullOrEmpty) m.TextValue.Write(w, "content"u8);
        WriteCacheControl(w, cache);
        w.WriteEndObject();
    }

    private static void WriteTextBlock(Utf8JsonWriter w, JsonText text, JsonElement raw, CacheControl? cache, bool native)
    {
        w.WriteStartObject();
        w.WriteString("type"u8, "text"u8);
        text.Write(w, "text"u8);
        if (native) WriteOtherProperties(w, raw, "type"u8, "text"u8);
        WriteCacheControl(w, cache);
        w.WriteEndObject();
    }

    private static void WriteImage(Utf8JsonWriter w, ContentPart part, CacheControl? cache, bool native)
    {
        if (native && part.Raw.ValueKind == JsonValueKind.Object)
        {
            WriteRawBlock(w, part.Raw, cache); // keeps any source kind (base64, url, file)
            return;
        }
        w.WriteStartObject();
        w.WriteString("type"u8, "image"u8);
        w.WriteStartObject("source"u8);
        if (part.Url is { } url)
        {
            if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
            {
                var comma = url.IndexOf(',');
                var meta = comma > 5 ? url.AsSpan(5, comma - 5) : default;
                if (comma < 0 || !meta.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
                    throw ApiError.InvalidRequest("An image data URL must be base64-encoded (data:<media type>;base64,<data>).", "messages");
                w.WriteString("type"u8, "base64"u8);
                w.WriteString("media_type"u8, meta[..^7]);
                w.WriteString("data"u8, url.AsSpan(comma + 1));
            }
            else if (url.StartsWith("https://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
            {
                w.WriteString("type"u8, "url"u8);
                w.WriteString("url"u8, url);
            }
            else throw ApiError.InvalidRequest("An image URL must be http(s) or a base64 data URL.", "messages");
        }
        else
        {
            w.WriteString("type"u8, "base64"u8);
            w.WriteString("media_type"u8, part.MediaType);
            w.WriteString("data"u8, part.Data);
        }
        w.WriteEndObject();
        WriteCacheControl(w, cache);
        w.WriteEndObject();
    }

    // ---- shared writing helpers ---------------------------------------------------------------------------------

    /// <summary>Writes a block as received, except its <c>cache_control</c>, which the CacheInjector may have changed.</summary>
    private static void WriteRawBlock(Utf8JsonWriter w, JsonElement raw, CacheControl? cache)
    {
        w.WriteStartObject();
        WriteOtherProperties(w, raw);
        WriteCacheControl(w, cache);
        w.WriteEndObject();
    }

    /// <summary>Copies the properties of <paramref name="raw"/> except <c>cache_control</c> and the named ones.</summary>
    private static void WriteOtherProperties(Utf8JsonWriter w, JsonElement raw,
        ReadOnlySpan<byte> skip1 = default, ReadOnlySpan<byte> skip2 = default, ReadOnlySpan<byte> skip3 = default, ReadOnlySpan<byte> skip4 = default)
    {
        if (raw.ValueKind != JsonValueKind.Object) return;
        foreach (var p in raw.EnumerateObject())
        {
            if (p.NameEquals("cache_control"u8)
                || (!skip1.IsEmpty && p.NameEquals(skip1)) || (!skip2.IsEmpty && p.NameEquals(skip2))
                || (!skip3.IsEmpty && p.NameEquals(skip3)) || (!skip4.IsEmpty && p.NameEquals(skip4)))
                continue;
            p.WriteTo(w);
        }
    }

    internal static void WriteCacheControl(Utf8JsonWriter w, CacheControl? cache)
    {
        if (cache is null) return;
        w.WriteStartObject("cache_control"u8);
        w.WriteString("type"u8, "ephemeral"u8);
        if (cache.Ttl is { } ttl) w.WriteString("ttl"u8, ttl);
        w.WriteEndObject();
    }

    /// <summary>Writes a tool-call id in the form Anthropic accepts (<c>^[a-zA-Z0-9_-]+$</c>).</summary>
    internal static void WriteToolId(Utf8JsonWriter w, ReadOnlySpan<byte> name, string id)
    {
        if (IsValidToolId(id))
        {
            w.WriteString(name, id);
            return;
        }
        if (id.Length == 0)
        {
            w.WriteString(name, "_"u8);
            return;
        }
        Span<char> buffer = id.Length <= 256 ? stackalloc char[id.Length] : new char[id.Length];
        for (var i = 0; i < id.Length; i++) buffer[i] = IsIdChar(id[i]) ? id[i] : '_';
        w.WriteString(name, buffer);
    }

    private static bool IsValidToolId(string id)
    {
        if (id.Length == 0) return false;
        foreach (var c in id)
            if (!IsIdChar(c)) return false;
        return true;
    }

    private static bool IsIdChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '-';

    /// <summary>Writes <c>input</c>: the arguments when they are a JSON object, else <c>{}</c> (see the class remarks).</summary>
    internal static void WriteInput(Utf8JsonWriter w, string? arguments)
    {
        w.WritePropertyName("input"u8);
        if (string.IsNullOrWhiteSpace(arguments))
        {
            w.WriteRawValue("{}"u8, skipInputValidation: true);
            return;
        }
        var max = System.Text.Encoding.UTF8.GetMaxByteCount(arguments.Length);
        var rented = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            var len = System.Text.Encoding.UTF8.GetBytes(arguments, rented);
            var json = rented.AsSpan(0, len);
            w.WriteRawValue(IsJsonObject(json) ? json : "{}"u8, skipInputValidation: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>True when the bytes are exactly one complete JSON object (whitespace around it allowed).</summary>
    internal static bool IsJsonObject(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            reader.Skip();
            return !reader.Read(); // nothing may follow the object
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
