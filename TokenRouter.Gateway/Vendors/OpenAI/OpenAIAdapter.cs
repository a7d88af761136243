using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Vendors.OpenAI;

/// <summary>OutboundAdapter for OpenAI chat completions (and the base of OpenAI-compatible providers).</summary>
public class OpenAIAdapter : IOutboundAdapter
{
    public virtual ProviderKind Kind => ProviderKind.OpenAI;
    public string RequestPath => "chat/completions";

    /// <summary>DeepSeek's usage is OpenAI's plus its cache hit/miss counts, which the OpenAI reader also reads.</summary>
    public IUsageReader Usage => OpenAIUsageReader.Instance;

    /// <summary>OpenAI's routing hint; other OpenAI-compatible providers may reject it.</summary>
    protected virtual bool SendsPromptCacheKey => true;

    /// <summary>Providers that reject content-part arrays (DeepSeek answers 400/422) get text parts joined into one string.</summary>
    protected virtual bool StringContentOnly => false;

    // "Bearer <key>" made once per provider key, not an AuthenticationHeaderValue per request formatted again when
    // written (~150 B a request). Holds only the deployments' own keys; cleared if key rotation ever piles them up.
    private readonly TextCache<string> _bearerHeaders = new(1024);

    public void AddHeaders(HttpRequestMessage request, string? apiKey)
    {
        if (string.IsNullOrEmpty(apiKey)) return;
        var header = _bearerHeaders.Get(apiKey, 0, static (key, _) => "Bearer " + key);
        // Replaces whatever a relayed request carried (the client's own gateway key must never reach the provider).
        request.Headers.Remove("Authorization");
        request.Headers.TryAddWithoutValidation("Authorization", header);
    }

    public void WriteRequest(Envelope envelope, string upstreamModel, IBufferWriter<byte> output)
    {
        using var lease = Utf8JsonWriterCache.Rent(output);
        var w = lease.Writer;
        var passExtras = envelope.ClientFormat == ApiFormat.OpenAI;
        w.WriteStartObject();
        w.WriteString("model"u8, upstreamModel);

        w.WriteStartArray("messages"u8);
        if (envelope.System is { Count: > 0 } system)
        {
            w.WriteStartObject();
            w.WriteString("role"u8, "system"u8);
            WriteTextContent(w, system);
            w.WriteEndObject();
        }
        foreach (var message in envelope.Messages) WriteMessage(w, message, passExtras);
        w.WriteEndArray();

        if (envelope.Tools.Count > 0)
        {
            w.WriteStartArray("tools"u8);
            foreach (var tool in envelope.Tools)
            {
                if (tool.IsRaw)
                {
                    if (passExtras) tool.Raw.WriteTo(w);
                    continue;
                }
                w.WriteStartObject();
                w.WriteString("type"u8, "function"u8);
                w.WriteStartObject("function"u8);
                w.WriteString("name"u8, tool.Name);
                if (tool.HasDescription) tool.DescriptionValue.Write(w, "description"u8);
                if (tool.CanonicalParameters is { } canonical)
                {
                    w.WritePropertyName("parameters"u8);
                    w.WriteRawValue(canonical, skipInputValidation: true);
                }
                else if (tool.Parameters.ValueKind == JsonValueKind.Object)
                {
                    w.WritePropertyName("parameters"u8);
                    tool.Parameters.WriteTo(w);
                }
                if (tool.Strict is { } strict) w.WriteBoolean("strict"u8, strict);
                // BFCL's `response` schema and the like: the model reads them, so they go where the client put them.
                if (passExtras && tool.HasUnknownFields) UnknownFields.WriteNested(w, tool.Raw, "function"u8, UnknownFields.OpenAIFunction);
                w.WriteEndObject();
                // The tool's own unknown fields, `cache_control` included (OpenAI-compatible providers that cache by it).
                if (passExtras && tool.HasUnknownFields) UnknownFields.Write(w, tool.Raw, UnknownFields.OpenAITool);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }

        if (envelope.ToolChoice is { } choice)
        {
            w.WritePropertyName("tool_choice"u8);
            switch (choice.Kind)
            {
                case ToolChoiceKind.Auto: w.WriteStringValue("auto"u8); break;
                case ToolChoiceKind.None: w.WriteStringValue("none"u8); break;
                case ToolChoiceKind.Required: w.WriteStringValue("required"u8); break;
                default:
                    w.WriteStartObject();
                    w.WriteString("type"u8, "function"u8);
                    w.WriteStartObject("function"u8);
                    w.WriteString("name"u8, choice.FunctionName);
                    if (passExtras) UnknownFields.WriteNested(w, envelope.ToolChoiceRaw, "function"u8, UnknownFields.OpenAIToolChoiceFunction);
                    w.WriteEndObject();
                    if (passExtras) UnknownFields.Write(w, envelope.ToolChoiceRaw, UnknownFields.OpenAIToolChoice);
                    w.WriteEndObject();
                    break;
            }
        }
        if (envelope.ParallelToolCalls is { } parallel && envelope.Tools.Count > 0) w.WriteBoolean("parallel_tool_calls"u8, parallel);
        if (envelope.MaxTokens is { } max)
        {
            // Translated requests use the current name; OpenAI clients keep the one they sent.
            var completionName = Kind == ProviderKind.OpenAI && (envelope.MaxTokensIsCompletionTokens || envelope.ClientFormat != ApiFormat.OpenAI);
            w.WriteNumber(completionName ? "max_completion_tokens"u8 : "max_tokens"u8, max);
        }
        if (envelope.Temperature is { } temperature) w.WriteNumber("temperature"u8, temperature);
        if (envelope.TopP is { } topP) w.WriteNumber("top_p"u8, topP);
        if (envelope.Stop is { Count: > 0 } stop)
        {
            w.WriteStartArray("stop"u8);
            foreach (var s in stop) w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (envelope.Stream)
        {
            w.WriteBoolean("stream"u8, true);
            w.WriteStartObject("stream_options"u8);
            w.WriteBoolean("include_usage"u8, true);
            if (passExtras) UnknownFields.Write(w, envelope.StreamOptions, UnknownFields.OpenAIStreamOptions);
            w.WriteEndObject();
        }
        if (SendsPromptCacheKey && envelope.PromptCacheKey is { } cacheKey) w.WriteString("prompt_cache_key"u8, cacheKey);
        if (passExtras && envelope.Extra is { } extra)
        {
            foreach (var (name, value) in extra)
            {
                w.WritePropertyName(name);
                value.WriteTo(w);
            }
        }
        else if (!passExtras && MetadataUserOf(envelope.Extra) is { } user)
        {
            // Anthropic's metadata.user_id is OpenAI's `user`; the rest of an Anthropic client's unknown fields has no
            // OpenAI place (README: field fidelity).
            w.WritePropertyName("user"u8);
            user.WriteTo(w);
        }
        w.WriteEndObject();
    }

    private static JsonElement? MetadataUserOf(List<KeyValuePair<string, JsonElement>>? extra)
    {
        if (extra is null) return null;
        foreach (var (name, value) in extra)
        {
            if (name == "metadata" && value.ValueKind == JsonValueKind.Object && value.TryGetProperty("user_id"u8, out var id)
                && id.ValueKind == JsonValueKind.String)
                return id;
        }
        return null;
    }

    private void WriteMessage(Utf8JsonWriter w, Message message, bool passExtras)
    {
        // Anthropic tool results live inside a user turn; OpenAI wants one tool message per result, first.
        if (message.Parts is { } parts && message.Role == MessageRole.User)
        {
            var hasOther = false;
            foreach (var part in parts)
            {
                if (part.Kind == PartKind.ToolResult)
                {
                    w.WriteStartObject();
                    w.WriteString("role"u8, "tool"u8);
                    w.WriteString("tool_call_id"u8, part.Id);
                    if (part.HasText) part.TextValue.Write(w, "content"u8);
                    else w.WriteString("content"u8, ToolResultText(part));
                    w.WriteEndObject();
                }
                else hasOther = true;
            }
            if (!hasOther) return;
        }

        w.WriteStartObject();
        w.WriteString("role"u8, OpenAIInboundAdapter.RoleName(message.Role));
        if (message.HasText) message.TextValue.Write(w, "content"u8);
        else if (StringContentOnly && message.Parts is { } textParts && AllText(textParts, out var joined)) w.WriteString("content"u8, joined);
        else if (message.Parts is { } ps && HasContentParts(ps))
        {
            w.WritePropertyName("content"u8);
            w.WriteStartArray();
            foreach (var part in ps) WritePart(w, part, passExtras);
            w.WriteEndArray();
        }
        else if (message.Role == MessageRole.Assistant) w.WriteNull("content"u8);
        else w.WriteString("content"u8, ""u8);

        if (message.Role == MessageRole.Assistant)
        {
            var wroteStart = false;
            if (message.ToolCalls is { Count: > 0 } calls)
            {
                w.WriteStartArray("tool_calls"u8);
                wroteStart = true;
                foreach (var call in calls) WriteToolCall(w, call.Id, call.Name, call.Arguments, passExtras && call.HasUnknownFields ? call.Raw : default);
            }
            if (message.Parts is { } assistantParts)
            {
                foreach (var part in assistantParts)
                {
                    if (part.Kind != PartKind.ToolUse) continue;
                    if (!wroteStart)
                    {
                        w.WriteStartArray("tool_calls"u8);
                        wroteStart = true;
                    }
                    WriteToolCall(w, part.Id!, part.Name!, part.Arguments ?? "{}", default);
                }
            }
            if (wroteStart) w.WriteEndArray();
        }
        if (message.ToolCallId is not null) w.WriteString("tool_call_id"u8, message.ToolCallId);
        if (message.Name is not null) w.WriteString("name"u8, message.Name);
        if (passExtras && message.Extra is { } extra)
        {
            foreach (var (name, value) in extra)
            {
                w.WritePropertyName(name);
                value.WriteTo(w);
            }
        }
        w.WriteEndObject();
    }

    /// <summary>True when the renderable parts are all text (tool blocks are written elsewhere); joins them with newlines.</summary>
    private static bool AllText(List<ContentPart> parts, out string joined)
    {
        joined = "";
        var texts = 0;
        foreach (var p in parts)
        {
            if (p.Kind is PartKind.ToolUse or PartKind.ToolResult) continue;
            if (p.Kind != PartKind.Text) return false;
            texts++;
        }
        if (texts == 0) return false;
        var sb = new System.Text.StringBuilder();
        foreach (var p in parts)
        {
            if (p.Kind != PartKind.Text) continue;
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(p.Text);
        }
        joined = sb.ToString();
        return true;
    }

    private static bool HasContentParts(List<ContentPart> parts)
    {
        foreach (var p in parts)
        {
            if (p.Kind is PartKind.Text or PartKind.Image or PartKind.Other) return true;
        }
        return false;
    }

    private static void WritePart(Utf8JsonWriter w, ContentPart part, bool passExtras)
    {
        switch (part.Kind)
        {
            case PartKind.Text:
                w.WriteStartObject();
                w.WriteString("type"u8, "text"u8);
                part.TextValue.Write(w, "text"u8);
                // The client's own fields, `cache_control` included: OpenAI-compatible providers that honour it need it here.
                if (passExtras && part.HasUnknownFields) UnknownFields.Write(w, part.Raw, UnknownFields.OpenAITextPart);
                w.WriteEndObject();
                break;
            case PartKind.Image when passExtras && part.Raw.ValueKind == JsonValueKind.Object:
                // An OpenAI client's own image part keeps everything it said (detail decides what the image costs).
                part.Raw.WriteTo(w);
                break;
            case PartKind.Image:
                w.WriteStartObject();
                w.WriteString("type"u8, "image_url"u8);
                w.WriteStartObject("image_url"u8);
                w.WriteString("url"u8, part.Url ?? $"data:{part.MediaType};base64,{part.Data}");
                w.WriteEndObject();
                w.WriteEndObject();
                break;
            case PartKind.Other when passExtras:
                part.Raw.WriteTo(w);
                break;
        }
    }

    /// <param name="raw">The call as an OpenAI client sent it (its unknown fields are passed on), or undefined.</param>
    private static void WriteToolCall(Utf8JsonWriter w, string id, string name, string arguments, JsonElement raw)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, id);
        w.WriteString("type"u8, "function"u8);
        w.WriteStartObject("function"u8);
        w.WriteString("name"u8, name);
        w.WriteString("arguments"u8, arguments);
        UnknownFields.WriteNested(w, raw, "function"u8, UnknownFields.OpenAIToolCallFunction);
        w.WriteEndObject();
        UnknownFields.Write(w, raw, UnknownFields.OpenAIToolCall);
        w.WriteEndObject();
    }

    /// <summary>Writes system blocks as OpenAI content: a string when it is one plain text, else text parts.</summary>
    private void WriteTextContent(Utf8JsonWriter w, List<ContentPart> parts)
    {
        if (parts.Count == 1 && parts[0].Kind == PartKind.Text)
        {
            parts[0].TextValue.Write(w, "content"u8);
            return;
        }
        if (StringContentOnly && AllText(parts, out var joined))
        {
            w.WriteString("content"u8, joined);
            return;
        }
        w.WriteStartArray("content"u8);
        foreach (var part in parts)
        {
            if (part.Kind != PartKind.Text) continue;
            w.WriteStartObject();
            w.WriteString("type"u8, "text"u8);
            part.TextValue.Write(w, "text"u8);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    internal static string ToolResultText(ContentPart result)
    {
        if (result.Text is not null) return result.Text;
        if (result.Content is not { Count: > 0 } blocks) return "";
        if (blocks.Count == 1 && blocks[0].Kind == PartKind.Text) return blocks[0].Text ?? "";
        var sb = new System.Text.StringBuilder();
        foreach (var b in blocks)
        {
            if (b.Kind != PartKind.Text) continue;
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(b.Text);
        }
        return sb.ToString();
    }
}

/// <summary>DeepSeek speaks OpenAI's wire format; its cache is automatic and needs only a stable prefix.</summary>
public sealed class DeepSeekAdapter : OpenAIAdapter
{
    public override ProviderKind Kind => ProviderKind.DeepSeek;
    protected override bool SendsPromptCacheKey => false;
    protected override bool StringContentOnly => true;
}
