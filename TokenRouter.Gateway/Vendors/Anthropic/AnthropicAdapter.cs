using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Vendors.Anthropic;

/// <summary>
/// OutboundAdapter for Anthropic's Messages API. Translates an envelope from either client format; an Anthropic
/// client's request round-trips with its own blocks, cache_control and unknown fields intact.
/// </summary>
/// <remarks>
/// Translation choices (OpenAI client → Anthropic):
/// <list type="bullet">
/// <item>Leading system/developer messages become <c>system</c> text blocks; a system/developer message later in the
/// conversation stays where it is, as a user-turn text block.</item>
/// <item>Consecutive same-role turns are merged (Anthropic requires alternation): tool messages become
/// <c>tool_result</c> blocks of one user turn.</item>
/// <item>Tool-call arguments that are not a JSON object (empty, malformed, or a non-object value) are sent as
/// <c>{}</c>: Anthropic requires an object and the request must never fail on what a model once produced.</item>
/// <item>Tool-call ids are made to fit Anthropic's <c>^[a-zA-Z0-9_-]+$</c> by replacing other characters with
/// <c>_</c>, identically in <c>tool_use</c> and <c>tool_result</c>, so the pairing survives.</item>
/// <item>Empty text (an assistant's <c>""</c> next to its tool calls) is dropped: Anthropic rejects empty text blocks.</item>
/// <item><c>temperature</c> is clamped to Anthropic's 0–1 range (OpenAI allows up to 2).</item>
/// <item>Content parts Anthropic cannot take (audio, files) are rejected with a 400 rather than silently dropped;
/// a <c>refusal</c> part becomes text.</item>
/// </list>
/// </remarks>
public sealed class AnthropicAdapter(int defaultMaxTokens = AnthropicAdapter.DefaultMaxTokens) : IOutboundAdapter
{
    /// <summary>Anthropic requires <c>max_tokens</c>; used when an OpenAI client sent none.</summary>
    public const int DefaultMaxTokens = 4096;

    public const string ApiVersion = "2023-06-01";

    public int MaxTokensDefault { get; } = defaultMaxTokens > 0
        ? defaultMaxTokens
        : throw new ArgumentOutOfRangeException(nameof(defaultMaxTokens), "The default max_tokens must be positive.");

    public ProviderKind Kind => ProviderKind.Anthropic;
    public string RequestPath => "v1/messages";
    public IUsageReader Usage => AnthropicUsageReader.Instance;

    public void AddHeaders(HttpRequestMessage request, string? apiKey)
    {
        if (!string.IsNullOrEmpty(apiKey))
        {
            request.Headers.Remove("x-api-key");
            request.Headers.TryAddWithoutValidation("x-api-key", apiKey);
        }
        // A client-sent version is forwarded by the proxy and wins; this is only the default.
        if (!request.Headers.Contains("anthropic-version"))
            request.Headers.TryAddWithoutValidation("anthropic-version", ApiVersion);
    }

    public void WriteRequest(Envelope envelope, string upstreamModel, IBufferWriter<byte> output)
    {
        using var lease = Utf8JsonWriterCache.Rent(output);
        var w = lease.Writer;
        var native = envelope.ClientFormat == ApiFormat.Anthropic;
        w.WriteStartObject();
        w.WriteString("model"u8, upstreamModel);
        w.WriteNumber("max_tokens"u8, envelope.MaxTokens ?? MaxTokensDefault);

        var firstTurn = WriteSystem(w, envelope, native);
        var toolsWritten = WriteTools(w, envelope.Tools, native);
        if (native || toolsWritten > 0) WriteToolChoice(w, envelope, native);
        WriteMessages(w, envelope.Messages, firstTurn, native);

        if (envelope.Temperature is { } temperature) w.WriteNumber("temperature"u8, native ? temperature : Math.Clamp(temperature, 0d, 1d));
        if (envelope.TopP is { } topP) w.WriteNumber("top_p"u8, topP);
        if (envelope.Stop is { Count: > 0 } stop)
        {
            w.WriteStartArray("stop_sequences"u8);
            foreach (var s in stop) w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (envelope.Stream) w.WriteBoolean("stream"u8, true);
        if (native && envelope.Extra is { } extra)
        {
            foreach (var (name, value) in extra)
            {
                w.WritePropertyName(name);
                value.WriteTo(w);
            }
        }
        else if (!native && UserOf(envelope.Extra) is { } user)
        {
            // OpenAI's end-user id has one Anthropic place; every other OpenAI-only field has none (README: field fidelity).
            w.WriteStartObject("metadata"u8);
            w.WritePropertyName("user_id"u8);
            user.WriteTo(w);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static JsonElement? UserOf(List<KeyValuePair<string, JsonElement>>? extra)
    {
        if (extra is null) return null;
        foreach (var (name, value) in extra)
            if (name == "user" && value.ValueKind == JsonValueKind.String) return value;
        return null;
    }

    // ---- system -------------------------------------------------------------------------------------------------

    /// <summary>Writes <c>system</c>; returns the index of the first message that is part of the conversation.</summary>
    private static int WriteSystem(Utf8JsonWriter w, Envelope envelope, bool native)
    {
        var system = envelope.System;
        var messages = envelope.Messages;
        var leading = 0;
        if (!native)
        {
            while (leading < messages.Count && messages[leading].Role is MessageRole.System or MessageRole.Developer) leading++;
        }

        var blocks = 0;
        if (system is not null)
        {
            foreach (var part in system)
                if (native || !IsEmptyText(part)) blocks++;
        }
        for (var i = 0; i < leading; i++) blocks += CountBlocks(messages[i], native);
        if (blocks == 0) return leading;

        // String form when the client sent one (Anthropic) or when it is one plain text without a breakpoint.
        if (TrySingleText(envelope, leading, out var single))
        {
            single.Write(w, "system"u8);
            return leading;
        }

        w.WriteStartArray("system"u8);
        if (system is not null)
        {
            foreach (var part in system)
            {
                if (!native && IsEmptyText(part)) continue;
                if (part.Kind == PartKind.Text) WriteTextBlock(w, part.TextValue, part.Raw, part.CacheControl, native);
                else WriteRawBlock(w, part.Raw, part.CacheControl);
            }
        }
        for (var i = 0; i < leading; i++) WriteMessageBlocks(w, messages[i], native);
        w.WriteEndArray();
        return leading;
    }

    private static bool TrySingleText(Envelope envelope, int leading, out JsonText text)
    {
        text = "";
        if (envelope.System is { } system)
        {
            if (leading != 0 || system.Count != 1 || system[0] is not { Kind: PartKind.Text, CacheControl: null } part) return false;
            if (envelope.ClientFormat == ApiFormat.Anthropic && !envelope.SystemWasString) return false;
            text = part.HasText ? part.TextValue : "";
            return true;
        }
        if (leading != 1) return false;
        var m = envelope.Messages[0];
        if (m.CacheBreakpoint is not null || !m.HasText) return false;
        text = m.TextValue;
        return true;
    }

    // ---- tools --------------------------------------------------------------------------------------------------

    private static int WriteTools(Utf8JsonWriter w, List<ToolDefinition> tools, bool native)
    {
        var written = 0;
        foreach (var tool in tools)
        {
            if (tool.IsRaw && !native) continue; // an OpenAI server tool has no Anthropic meaning
            if (written++ == 0) w.WriteStartArray("tools"u8);
            if (tool.IsRaw)
            {
                WriteRawBlock(w, tool.Raw, tool.CacheControl);
                continue;
            }
            w.WriteStartObject();
            w.WriteString("name"u8, tool.Name);
            if (tool.HasDescription) tool.DescriptionValue.Write(w, "description"u8);
            w.WritePropertyName("input_schema"u8);
            if (tool.CanonicalParameters is { } canonical) w.WriteRawValue(canonical, skipInputValidation: true);
            else if (tool.Parameters.ValueKind == JsonValueKind.Object) tool.Parameters.WriteTo(w);
            else w.WriteRawValue("{\"properties\":{},\"type\":\"object\"}"u8, skipInputValidation: true);
            if (native) WriteOtherProperties(w, tool.Raw, "name"u8, "description"u8, "input_schema"u8);
            WriteCacheControl(w, tool.CacheControl);
            w.WriteEndObject();
        }
        if (written > 0) w.WriteEndArray();
        return written;
    }

    private static void WriteToolChoice(Utf8JsonWriter w, Envelope envelope, bool native)
    {
        var choice = envelope.ToolChoice;
        bool? disableParallel = choice?.DisableParallel ?? (envelope.ParallelToolCalls == false ? true : null);
        if (choice is null && disableParallel is null) return;

        w.WriteStartObject("tool_choice"u8);
        switch (choice?.Kind ?? ToolChoiceKind.Auto)
        {
            case ToolChoiceKind.None:
                w.WriteString("type"u8, "none"u8);
                disableParallel = null; // not accepted with "none"
                break;
            case ToolChoiceKind.Required:
                w.WriteString("type"u8, "any"u8);
                break;
            case ToolChoiceKind.Function:
                w.WriteString("type"u8, "tool"u8);
                w.WriteString("name"u8, choice!.FunctionName);
                break;
            default:
                w.WriteString("type"u8, "auto"u8);
                break;
        }
        if (disableParallel is { } disable) w.WriteBoolean("disable_parallel_tool_use"u8, disable);
        if (native) UnknownFields.Write(w, envelope.ToolChoiceRaw, UnknownFields.AnthropicToolChoice);
        w.WriteEndObject();
    }

    // ---- messages -----------------------------------------------------------------------------------------------

    private static void WriteMessages(Utf8JsonWriter w, List<Message> messages, int start, bool native)
    {
        w.WriteStartArray("messages"u8);
        var open = false;
        var openIsUser = false;
        for (var i = start; i < messages.Count; i++)
        {
            var m = messages[i];
            if (!native && CountBlocks(m, native) == 0) continue;
            var isUser = m.Role != MessageRole.Assistant;
            if (!open || isUser != openIsUser)
            {
                if (open)
                {
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteStartObject();
                w.WriteString("role"u8, isUser ? "user"u8 : "assistant"u8);
                var next = NextRendered(messages, i + 1, native);
                var alone = next < 0 || (messages[next].Role != MessageRole.Assistant) != isUser;
                // Keep the string form when this message is the whole turn (a faithful round trip for Anthropic clients).
                // HasText, not Text: reading Text would decode the client's token to a string only to encode it again.
                if (alone && m.Role != MessageRole.Tool && m.HasText && m is { Parts: null, ToolCalls: null, CacheBreakpoint: null })
                {
                    m.TextValue.Write(w, "content"u8);
                    if (native) WriteExtra(w, m.Extra);
                    w.WriteEndObject();
                    open = false;
                    continue;
                }
                if (alone && native) WriteExtra(w, m.Extra);
                w.WriteStartArray("content"u8);
                open = true;
                openIsUser = isUser;
            }
            WriteMessageBlocks(w, m, native);
        }
        if (open)
        {
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static int NextRendered(List<Message> messages, int from, bool native)
    {
        for (var i = from; i < messages.Count; i++)
        {
            if (native || CountBlocks(messages[i], native) > 0) return i;
        }
        return -1;
    }

    private static void WriteExtra(Utf8JsonWriter w, List<KeyValuePair<string, JsonElement>>? extra)
    {
        if (extra is null) return;
        foreach (var (name, value) in extra)
        {
            w.WritePropertyName(name);
            value.WriteTo(w);
        }
    }

    /// <summary>How many content blocks a message renders to (the last one carries its cache breakpoint).</summary>
    private static int CountBlocks(Message m, bool native)
    {
        if (m.Role == MessageRole.Tool) return 1;
        var n = 0;
        if (m.HasText && (native || !m.TextValue.IsNullOrEmpty)) n++;
        if (m.Parts is { } parts)
        {
            foreach (var part in parts)
                if (PartRenders(part, native)) n++;
        }
        if (m.ToolCalls is { } calls) n += calls.Count;
        return n;
    }

    private static bool PartRenders(ContentPart part, bool native)
    {
        if (native) return true;
        return part.Kind switch
        {
            PartKind.Text => !part.TextValue.IsNullOrEmpty,
            PartKind.Other => !string.IsNullOrEmpty(RefusalText(part)),
            _ => true,
        };
    }

    private static bool IsEmptyText(ContentPart part) => part.Kind == PartKind.Text && part.TextValue.IsNullOrEmpty;

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
