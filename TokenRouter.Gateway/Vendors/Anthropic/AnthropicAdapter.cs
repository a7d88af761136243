using System.Buffers;
using System.Text.Json;
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
public sealed partial class AnthropicAdapter(int defaultMaxTokens = AnthropicAdapter.DefaultMaxTokens) : IOutboundAdapter
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
}
