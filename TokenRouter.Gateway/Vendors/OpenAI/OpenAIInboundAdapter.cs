using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using static TokenRouter.Gateway.Formats.JsonReading;

namespace TokenRouter.Gateway.Vendors.OpenAI;

/// <summary>Parses an OpenAI chat-completions request into an <see cref="Envelope"/>. Unknown fields are kept.</summary>
public static class OpenAIInboundAdapter
{
    public static Envelope Parse(ReadOnlyMemory<byte> body, IDisposable? bodyOwner = null) => InboundJson.Parse(body, bodyOwner, Read);

    private static Envelope Read(JsonDocument document, IDisposable? bodyOwner)
    {
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidRequest("The request body must be a JSON object.");

        string? model = null;
        JsonElement messages = default, tools = default;
        var envelope = new Envelope { ClientFormat = ApiFormat.OpenAI, Document = document, BodyOwner = bodyOwner, Model = "" };
        List<KeyValuePair<string, JsonElement>>? extra = null;

        foreach (var p in root.EnumerateObject())
        {
            var v = p.Value;
            if (p.NameEquals("model"u8)) model = model is null ? RequireString(v, "model") : throw Duplicate("model");
            else if (p.NameEquals("messages"u8)) messages = messages.ValueKind == JsonValueKind.Undefined ? v : throw Duplicate("messages");
            else if (p.NameEquals("tools"u8)) tools = v;
            else if (p.NameEquals("stream"u8)) envelope.Stream = OptionalBool(v, "stream");
            else if (p.NameEquals("stream_options"u8))
            {
                envelope.StreamOptions = v;
                if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("include_usage"u8, out var iu))
                    envelope.ClientWantsStreamUsage = OptionalBool(iu, "stream_options.include_usage");
                else if (v.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
                    throw ApiError.InvalidRequest("'stream_options' must be an object.", "stream_options");
            }
            else if (p.NameEquals("max_tokens"u8)) envelope.MaxTokens = OptionalPositiveInt(v, "max_tokens");
            else if (p.NameEquals("max_completion_tokens"u8))
            {
                envelope.MaxTokens = OptionalPositiveInt(v, "max_completion_tokens");
                envelope.MaxTokensIsCompletionTokens = envelope.MaxTokens is not null;
            }
            else if (p.NameEquals("temperature"u8)) envelope.Temperature = OptionalNumber(v, "temperature");
            else if (p.NameEquals("top_p"u8)) envelope.TopP = OptionalNumber(v, "top_p");
            else if (p.NameEquals("stop"u8)) envelope.Stop = StopSequences(v, "stop");
            else if (p.NameEquals("tool_choice"u8)) (envelope.ToolChoice, envelope.ToolChoiceRaw) = (ReadToolChoice(v), v);
            else if (p.NameEquals("parallel_tool_calls"u8)) envelope.ParallelToolCalls = OptionalNullableBool(v, "parallel_tool_calls");
            else if (p.NameEquals("prompt_cache_key"u8)) envelope.PromptCacheKey = OptionalString(v, "prompt_cache_key");
            else AddExtra(ref extra, CheckedTopLevel(p));
        }

        if (string.IsNullOrEmpty(model)) throw ApiError.InvalidRequest("'model' is required.", "model");
        envelope.Model = model;
        envelope.Extra = extra;

        if (messages.ValueKind == JsonValueKind.Undefined) throw ApiError.InvalidRequest("'messages' is required.", "messages");
        RequireArray(messages, "messages");
        if (messages.GetArrayLength() == 0) throw ApiError.InvalidRequest("'messages' must contain at least one message.", "messages");
        envelope.Messages = ReadArray(messages, "messages", dotted: false, ReadMessage);

        if (tools.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
        {
            RequireArray(tools, "tools");
            envelope.Tools = ReadArray(tools, "tools", dotted: false, ReadTool);
        }
        return envelope;
    }

    // The element readers below name fields relative to their element (".role"); ReadArray puts the element's own path
    // in front when one fails.

    private static Message ReadMessage(JsonElement m)
    {
        RequireObject(m, "");
        MessageRole? role = null;
        var message = new Message { Role = MessageRole.User };
        List<KeyValuePair<string, JsonElement>>? extra = null;
        JsonElement content = default;
        foreach (var p in m.EnumerateObject())
        {
            var v = p.Value;
            if (p.NameEquals("role"u8)) role = ParseRole(v);
            else if (p.NameEquals("content"u8)) content = v;
            else if (p.NameEquals("tool_calls"u8)) message.ToolCalls = ReadToolCalls(v);
            else if (p.NameEquals("tool_call_id"u8)) message.ToolCallId = OptionalString(v, ".tool_call_id");
            else if (p.NameEquals("name"u8)) message.Name = OptionalString(v, ".name");
            else AddExtra(ref extra, p);
        }
        message.Role = role ?? throw ApiError.InvalidRequest("'.role' is required.", ".role");
        message.Extra = extra;

        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                message.TextToken = content;
                break;
            case JsonValueKind.Array:
                message.Parts = ReadArray(content, ".content", dotted: false, ReadPart);
                break;
            case JsonValueKind.Null or JsonValueKind.Undefined:
                if (message.Role != MessageRole.Assistant)
                    throw ApiError.InvalidRequest($"'.content' is required for role '{RoleName(message.Role)}'.", ".content");
                break;
            default:
                throw ApiError.InvalidRequest("'.content' must be a string or an array of content parts.", ".content");
        }
        if (message.Role == MessageRole.Tool && message.ToolCallId is null)
            throw ApiError.InvalidRequest("'.tool_call_id' is required for role 'tool'.", ".tool_call_id");
        return message;
    }

    private static ContentPart ReadPart(JsonElement part)
    {
        RequireObject(part, "");
        var type = part.TryGetProperty("type"u8, out var t) ? RequireStringOf(t, ".type", "text", "image_url") : null;
        switch (type)
        {
            case "text":
                var textPart = new ContentPart
                {
                    Kind = PartKind.Text,
                    CacheControl = part.TryGetProperty("cache_control"u8, out var cc) ? CacheControlOf(cc, ".cache_control") : null,
                    Raw = part,
                    // type + text are written by the gateway; anything more (cache_control included) is passed on.
                    HasUnknownFields = part.GetPropertyCount() > (part.TryGetProperty("text"u8, out _) ? 2 : 1),
                };
                if (part.TryGetProperty("text"u8, out var text)) textPart.TextToken = RequireStringToken(text, ".text");
                else textPart.Text = "";
                return textPart;
            case "image_url":
                string? url = null;
                if (part.TryGetProperty("image_url"u8, out var iu))
                    url = iu.ValueKind == JsonValueKind.String ? iu.GetString()
                        : iu.ValueKind == JsonValueKind.Object && iu.TryGetProperty("url"u8, out var u) ? OptionalString(u, ".image_url.url") : null;
                if (url is null) throw ApiError.InvalidRequest("'.image_url.url' is required.", ".image_url");
                return new ContentPart { Kind = PartKind.Image, Url = url, Raw = part };
            case null:
                throw ApiError.InvalidRequest("'.type' is required.", ".type");
            default:
                return new ContentPart { Kind = PartKind.Other, Raw = part };
        }
    }

    private static List<ToolCall>? ReadToolCalls(JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Null) return null;
        RequireArray(v, ".tool_calls");
        return ReadArray(v, ".tool_calls", dotted: false, ReadToolCall);
    }

    private static ToolCall ReadToolCall(JsonElement call)
    {
        RequireObject(call, "");
        if (!call.TryGetProperty("function"u8, out var fn) || fn.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidRequest("'.function' is required.", ".function");
        var args = fn.TryGetProperty("arguments"u8, out var a) ? a.ValueKind switch
        {
            JsonValueKind.String => JsonStringCache.Get(a),
            JsonValueKind.Object or JsonValueKind.Array => JsonStringCache.GetRawText(a),
            _ => throw ApiError.InvalidRequest("'.function.arguments' must be a string.", ".function.arguments"),
        } : "{}";
        return new ToolCall
        {
            Id = call.TryGetProperty("id"u8, out var id) ? RequireString(id, ".id") : throw ApiError.InvalidRequest("'.id' is required.", ".id"),
            Name = fn.TryGetProperty("name"u8, out var n) ? RequireString(n, ".function.name") : throw ApiError.InvalidRequest("'.function.name' is required.", ".function.name"),
            Arguments = args,
            Raw = call,
            // id + function (+ type) and name (+ arguments) are all the gateway writes.
            HasUnknownFields = call.GetPropertyCount() > (call.TryGetProperty("type"u8, out _) ? 3 : 2)
                || fn.GetPropertyCount() > (a.ValueKind == JsonValueKind.Undefined ? 1 : 2),
        };
    }

    private static ToolDefinition ReadTool(JsonElement t)
    {
        RequireObject(t, "");
        var hasType = t.TryGetProperty("type"u8, out var ty);
        var type = hasType ? RequireStringOf(ty, ".type", "function") : "function";
        if (type != "function")
            return new ToolDefinition { Name = type, IsRaw = true, Raw = t };
        if (!t.TryGetProperty("function"u8, out var fn) || fn.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidRequest("'.function' is required.", ".function");
        var name = fn.TryGetProperty("name"u8, out var n) ? RequireString(n, ".function.name") : null;
        if (string.IsNullOrEmpty(name)) throw ApiError.InvalidRequest("'.function.name' is required.", ".function.name");
        var parameters = fn.TryGetProperty("parameters"u8, out var ps) ? ps : default;
        if (parameters.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Object or JsonValueKind.Null))
            throw ApiError.InvalidRequest("'.function.parameters' must be a JSON schema object.", ".function.parameters");
        var hasDescription = fn.TryGetProperty("description"u8, out var d);
        var hasStrict = fn.TryGetProperty("strict"u8, out var s);
        return new ToolDefinition
        {
            Name = name,
            DescriptionToken = hasDescription ? OptionalStringToken(d, ".function.description") : default,
            Parameters = parameters.ValueKind == JsonValueKind.Null ? default : parameters,
            Strict = hasStrict ? OptionalNullableBool(s, ".function.strict") : null,
            CacheControl = t.TryGetProperty("cache_control"u8, out var cc) ? CacheControlOf(cc, ".cache_control") : null,
            Raw = t,
            // The tool's type + function and the function's name, description, parameters, strict are modelled.
            HasUnknownFields = t.GetPropertyCount() > (hasType ? 2 : 1)
                || fn.GetPropertyCount() > 1 + (hasDescription ? 1 : 0) + (parameters.ValueKind == JsonValueKind.Undefined ? 0 : 1) + (hasStrict ? 1 : 0),
        };
    }

    private static ToolChoice? ReadToolChoice(JsonElement v)
    {
        switch (v.ValueKind)
        {
            case JsonValueKind.Null or JsonValueKind.Undefined:
                return null;
            case JsonValueKind.String:
                if (v.ValueEquals("auto"u8)) return ToolChoice.Auto;
                if (v.ValueEquals("none"u8)) return ToolChoice.None;
                if (v.ValueEquals("required"u8)) return ToolChoice.Required;
                throw ApiError.InvalidRequest($"'tool_choice' value '{v.GetString()}' is not one of auto, none, required.", "tool_choice");
            case JsonValueKind.Object when v.TryGetProperty("function"u8, out var fn) && fn.ValueKind == JsonValueKind.Object
                                          && fn.TryGetProperty("name"u8, out var n) && n.ValueKind == JsonValueKind.String:
                return new ToolChoice(ToolChoiceKind.Function, n.GetString());
            default:
                throw ApiError.InvalidRequest("'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}.", "tool_choice");
        }
    }

    private static MessageRole ParseRole(JsonElement v) => RequireStringOf(v, ".role", "system", "developer", "user", "assistant", "tool") switch
    {
        "system" => MessageRole.System,
        "developer" => MessageRole.Developer,
        "user" => MessageRole.User,
        "assistant" => MessageRole.Assistant,
        "tool" => MessageRole.Tool,
        var role => throw ApiError.InvalidRequest($"'.role' '{role}' is not one of system, developer, user, assistant, tool.", ".role"),
    };

    public static string RoleName(MessageRole role) => role switch
    {
        MessageRole.System => "system",
        MessageRole.Developer => "developer",
        MessageRole.User => "user",
        MessageRole.Assistant => "assistant",
        _ => "tool",
    };
}

internal static class InboundJson
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 128 };

    /// <summary>Parses the body and reads it into an envelope; the document is disposed if reading fails.</summary>
    public static Envelope Parse(ReadOnlyMemory<byte> body, IDisposable? bodyOwner, Func<JsonDocument, IDisposable?, Envelope> read)
    {
        var document = ParseDocument(body);
        Envelope envelope;
        try
        {
            envelope = read(document, bodyOwner);
        }
        catch (InvalidOperationException ex)
        {
            // System.Text.Json parses an unpaired surrogate escape ("\ud83d", as JavaScript writes a string cut inside
            // an emoji) but refuses to decode it: a client error, never a 500.
            document.Dispose();
            throw ApiError.InvalidJson(ex.Message);
        }
        catch
        {
            document.Dispose();
            throw;
        }
        // The parser checks structure, not the bytes inside strings, and the fields read above name themselves when
        // they hold an unpaired surrogate. What is passed on unread (user, unknown fields, metadata) is checked here: it
        // would otherwise reach the provider as text that is not Unicode, or fail only when the request is written.
        var dotted = envelope.ClientFormat == ApiFormat.Anthropic;
        if (!Utf8.IsValid(body.Span))
        {
            document.Dispose();
            var bad = FirstInvalidUtf8(body.Span);
            var where = SurrogateEscapes.PathAt(body.Span, bad, dotted);
            throw ApiError.InvalidRequest($"'{where}' holds bytes that are not UTF-8 (at byte {bad}); JSON text must be UTF-8.", where);
        }
        if (SurrogateEscapes.FindUnpaired(body.Span) is var at and >= 0)
        {
            document.Dispose(); // not the envelope: the body stays its caller's, as for every other parse failure
            var path = SurrogateEscapes.PathAt(body.Span, at, dotted);
            throw ApiError.InvalidRequest($"'{path}' holds an unpaired UTF-16 surrogate escape ('{Encoding.ASCII.GetString(body.Span.Slice(at, 6))}'); text must be valid Unicode.", path);
        }
        return envelope;
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> body)
    {
        for (var i = 0; i < body.Length;)
        {
            if (System.Text.Rune.DecodeFromUtf8(body[i..], out _, out var consumed) != System.Buffers.OperationStatus.Done) return i;
            i += consumed;
        }
        return body.Length;
    }

    public static JsonDocument ParseDocument(ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty) throw ApiError.InvalidRequest("The request body is empty; a JSON object is required.");
        try
        {
            return JsonDocument.Parse(body, Options);
        }
        catch (JsonException ex)
        {
            throw ApiError.InvalidJson(ex.Message.Split(" Path:")[0]);
        }
    }
}
