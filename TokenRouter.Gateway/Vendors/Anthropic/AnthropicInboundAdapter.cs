using System.Text.Json;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Vendors.OpenAI;
using static TokenRouter.Gateway.Formats.JsonReading;

namespace TokenRouter.Gateway.Vendors.Anthropic;

/// <summary>Parses an Anthropic messages request into an <see cref="Envelope"/>. Unknown fields are kept.</summary>
public static class AnthropicInboundAdapter
{
    public static Envelope Parse(ReadOnlyMemory<byte> body, IDisposable? bodyOwner = null) => InboundJson.Parse(body, bodyOwner, Read);

    private static Envelope Read(JsonDocument document, IDisposable? bodyOwner)
    {
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidRequest("The request body must be a JSON object.");

        string? model = null;
        JsonElement messages = default, tools = default, system = default;
        var envelope = new Envelope { ClientFormat = ApiFormat.Anthropic, Document = document, BodyOwner = bodyOwner, Model = "" };
        List<KeyValuePair<string, JsonElement>>? extra = null;

        foreach (var p in root.EnumerateObject())
        {
            var v = p.Value;
            if (p.NameEquals("model"u8)) model = model is null ? RequireString(v, "model") : throw Duplicate("model");
            else if (p.NameEquals("messages"u8)) messages = messages.ValueKind == JsonValueKind.Undefined ? v : throw Duplicate("messages");
            else if (p.NameEquals("system"u8)) system = v;
            else if (p.NameEquals("tools"u8)) tools = v;
            else if (p.NameEquals("stream"u8)) envelope.Stream = OptionalBool(v, "stream");
            else if (p.NameEquals("max_tokens"u8)) envelope.MaxTokens = OptionalPositiveInt(v, "max_tokens");
            else if (p.NameEquals("temperature"u8)) envelope.Temperature = OptionalNumber(v, "temperature");
            else if (p.NameEquals("top_p"u8)) envelope.TopP = OptionalNumber(v, "top_p");
            else if (p.NameEquals("stop_sequences"u8)) envelope.Stop = StopSequences(v, "stop_sequences");
            else if (p.NameEquals("tool_choice"u8))
            {
                (envelope.ToolChoice, envelope.ParallelToolCalls) = ReadToolChoice(v);
                envelope.ToolChoiceRaw = v;
            }
            else AddExtra(ref extra, CheckedTopLevel(p));
        }

        if (string.IsNullOrEmpty(model)) throw ApiError.InvalidRequest("model: Field required", "model");
        if (envelope.MaxTokens is null) throw ApiError.InvalidRequest("max_tokens: Field required", "max_tokens");
        envelope.Model = model;
        envelope.Extra = extra;

        switch (system.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                break;
            case JsonValueKind.String:
                envelope.System = [new ContentPart { Kind = PartKind.Text, TextToken = system }];
                envelope.SystemWasString = true;
                break;
            case JsonValueKind.Array:
                envelope.System = ReadBlocks(system, "system");
                break;
            default:
                throw ApiError.InvalidRequest("system: must be a string or an array of text blocks", "system");
        }

        if (messages.ValueKind == JsonValueKind.Undefined) throw ApiError.InvalidRequest("messages: Field required", "messages");
        RequireArray(messages, "messages");
        envelope.Messages = ReadArray(messages, "messages", dotted: true, ReadMessage);
        if (envelope.Messages.Count == 0) throw ApiError.InvalidRequest("messages: at least one message is required", "messages");

        if (tools.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
        {
            RequireArray(tools, "tools");
            envelope.Tools = ReadArray(tools, "tools", dotted: true, ReadTool);
        }
        return envelope;
    }

    // The element readers below name fields relative to their element (".role"); ReadArray puts the element's own path
    // in front when one fails.

    private static Message ReadMessage(JsonElement m)
    {
        RequireObject(m, "");
        var role = m.TryGetProperty("role"u8, out var r) ? RequireStringOf(r, ".role", "user", "assistant") : throw ApiError.InvalidRequest(".role: Field required", ".role");
        var message = new Message
        {
            Role = role switch
            {
                "user" => MessageRole.User,
                "assistant" => MessageRole.Assistant,
                _ => throw ApiError.InvalidRequest(".role: Input should be 'user' or 'assistant'", ".role"),
            },
        };
        if (!m.TryGetProperty("content"u8, out var content)) throw ApiError.InvalidRequest(".content: Field required", ".content");
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                message.TextToken = content;
                break;
            case JsonValueKind.Array:
                message.Parts = ReadBlocks(content, ".content");
                break;
            default:
                throw ApiError.InvalidRequest(".content: must be a string or an array of content blocks", ".content");
        }
        foreach (var p in m.EnumerateObject())
        {
            if (!p.NameEquals("role"u8) && !p.NameEquals("content"u8)) (message.Extra ??= []).Add(new(p.Name, p.Value));
        }
        return message;
    }

    /// <param name="at">The array's path relative to the enclosing reader (or absolute at the top level).</param>
    private static List<ContentPart> ReadBlocks(JsonElement array, string at) => ReadArray(array, at, dotted: true, ReadBlock);

    private static ContentPart ReadBlock(JsonElement block)
    {
        RequireObject(block, "");
        var type = block.TryGetProperty("type"u8, out var t) ? RequireStringOf(t, ".type", "text", "tool_use", "tool_result", "image") : throw ApiError.InvalidRequest(".type: Field required", ".type");
        var cache = block.TryGetProperty("cache_control"u8, out var cc) ? CacheControlOf(cc, ".cache_control") : null;
        switch (type)
        {
            case "text":
                return new ContentPart
                {
                    Kind = PartKind.Text,
                    TextToken = block.TryGetProperty("text"u8, out var text) ? RequireStringToken(text, ".text") : throw ApiError.InvalidRequest(".text: Field required", ".text"),
                    CacheControl = cache,
                    Raw = block,
                };
            case "image":
                var part = new ContentPart { Kind = PartKind.Image, CacheControl = cache, Raw = block };
                if (block.TryGetProperty("source"u8, out var src) && src.ValueKind == JsonValueKind.Object)
                {
                    var srcType = src.TryGetProperty("type"u8, out var st) ? st.GetString() : null;
                    if (srcType == "base64")
                    {
                        part.MediaType = src.TryGetProperty("media_type"u8, out var mt) ? OptionalString(mt, ".source.media_type") : null;
                        part.Data = src.TryGetProperty("data"u8, out var d) ? OptionalString(d, ".source.data") : null;
                    }
                    else if (srcType == "url")
                    {
                        part.Url = src.TryGetProperty("url"u8, out var u) ? OptionalString(u, ".source.url") : null;
                    }
                }
                return part;
            case "tool_use":
                var input = block.TryGetProperty("input"u8, out var inp) ? inp : default;
                if (input.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Object))
                    throw ApiError.InvalidRequest(".input: Input should be an object", ".input");
                return new ContentPart
                {
                    Kind = PartKind.ToolUse,
                    Id = block.TryGetProperty("id"u8, out var id) ? RequireString(id, ".id") : throw ApiError.InvalidRequest(".id: Field required", ".id"),
                    Name = block.TryGetProperty("name"u8, out var n) ? RequireString(n, ".name") : throw ApiError.InvalidRequest(".name: Field required", ".name"),
                    Arguments = input.ValueKind == JsonValueKind.Undefined ? "{}" : JsonStringCache.GetRawText(input),
                    CacheControl = cache,
                    Raw = block,
                };
            case "tool_result":
                var result = new ContentPart
                {
                    Kind = PartKind.ToolResult,
                    Id = block.TryGetProperty("tool_use_id"u8, out var tu) ? RequireString(tu, ".tool_use_id") : throw ApiError.InvalidRequest(".tool_use_id: Field required", ".tool_use_id"),
                    IsError = block.TryGetProperty("is_error"u8, out var ie) && OptionalBool(ie, ".is_error"),
                    CacheControl = cache,
                    Raw = block,
                };
                if (block.TryGetProperty("content"u8, out var rc))
                {
                    if (rc.ValueKind == JsonValueKind.String) result.TextToken = rc;
                    else if (rc.ValueKind == JsonValueKind.Array) result.Content = ReadBlocks(rc, ".content");
                    else if (rc.ValueKind != JsonValueKind.Null) throw ApiError.InvalidRequest(".content: must be a string or an array of blocks", ".content");
                }
                return result;
            default:
                return new ContentPart { Kind = PartKind.Other, CacheControl = cache, Raw = block };
        }
    }

    private static ToolDefinition ReadTool(JsonElement t)
    {
        RequireObject(t, "");
        var type = t.TryGetProperty("type"u8, out var ty) ? OptionalString(ty, ".type") : null;
        var cache = t.TryGetProperty("cache_control"u8, out var cc) ? CacheControlOf(cc, ".cache_control") : null;
        var name = t.TryGetProperty("name"u8, out var n) ? RequireString(n, ".name") : throw ApiError.InvalidRequest(".name: Field required", ".name");
        if (type is not null and not "custom")
            return new ToolDefinition { Name = name, IsRaw = true, Raw = t, CacheControl = cache };
        var schema = t.TryGetProperty("input_schema"u8, out var s) ? s : throw ApiError.InvalidRequest(".input_schema: Field required", ".input_schema");
        RequireObject(schema, ".input_schema");
        var hasDescription = t.TryGetProperty("description"u8, out var d);
        return new ToolDefinition
        {
            Name = name,
            DescriptionToken = hasDescription ? OptionalStringToken(d, ".description") : default,
            Parameters = schema,
            CacheControl = cache,
            Raw = t,
            // name + input_schema (+ description, type, cache_control) are modelled.
            HasUnknownFields = t.GetPropertyCount() > 2 + (hasDescription ? 1 : 0) + (type is null ? 0 : 1) + (cache is null && cc.ValueKind == JsonValueKind.Undefined ? 0 : 1),
        };
    }

    private static (ToolChoice?, bool?) ReadToolChoice(JsonElement v)
    {
        if (v.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return (null, null);
        RequireObject(v, "tool_choice");
        var type = v.TryGetProperty("type"u8, out var t) ? RequireString(t, "tool_choice.type") : throw ApiError.InvalidRequest("tool_choice.type: Field required", "tool_choice.type");
        bool? disableParallel = v.TryGetProperty("disable_parallel_tool_use"u8, out var dp) ? OptionalBool(dp, "tool_choice.disable_parallel_tool_use") : null;
        var choice = type switch
        {
            "auto" => new ToolChoice(ToolChoiceKind.Auto, null, disableParallel),
            "any" => new ToolChoice(ToolChoiceKind.Required, null, disableParallel),
            "none" => ToolChoice.None,
            "tool" => new ToolChoice(ToolChoiceKind.Function,
                v.TryGetProperty("name"u8, out var n) ? RequireString(n, "tool_choice.name") : throw ApiError.InvalidRequest("tool_choice.name: Field required", "tool_choice.name"),
                disableParallel),
            _ => throw ApiError.InvalidRequest($"tool_choice.type: '{type}' is not one of auto, any, tool, none", "tool_choice.type"),
        };
        return (choice, disableParallel is null ? null : !disableParallel);
    }
}
