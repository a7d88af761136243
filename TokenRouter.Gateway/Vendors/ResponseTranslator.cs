using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Vendors.Anthropic;

namespace TokenRouter.Gateway.Vendors;

/// <summary>
/// Translates a provider's non-streaming response into the client's format (OpenAI chat completion ↔ Anthropic
/// message). Usage is written from the normalized <see cref="Usage"/> so the numbers are the client's own dialect.
/// </summary>
public static class ResponseTranslator
{
    public static void TranslateJson(ApiFormat from, ApiFormat to, JsonElement providerRoot, Usage usage, string clientModel, IBufferWriter<byte> output) =>
        TranslateJson(from, to, providerRoot, usage, clientModel, output, DateTimeOffset.UtcNow.ToUnixTimeSeconds());

    /// <param name="created">Unix seconds for OpenAI's <c>created</c> (Anthropic responses carry no timestamp).</param>
    public static void TranslateJson(ApiFormat from, ApiFormat to, JsonElement providerRoot, Usage usage, string clientModel,
        IBufferWriter<byte> output, long created)
    {
        using var lease = Utf8JsonWriterCache.Rent(output);
        var w = lease.Writer;
        if (from == to) providerRoot.WriteTo(w); // callers pass same-format bodies through; stay correct if they do not
        else if (from == ApiFormat.Anthropic) AnthropicToOpenAI(w, providerRoot, usage, clientModel, created);
        else OpenAIToAnthropic(w, providerRoot, usage, clientModel);
    }

    private static void AnthropicToOpenAI(Utf8JsonWriter w, JsonElement root, Usage usage, string clientModel, long created)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, WireMapping.OpenAIId(StringOf(root, "id"u8)));
        w.WriteString("object"u8, "chat.completion"u8);
        w.WriteNumber("created"u8, created);
        w.WriteString("model"u8, clientModel);
        w.WriteStartArray("choices"u8);
        w.WriteStartObject();
        w.WriteNumber("index"u8, 0);
        w.WriteStartObject("message"u8);
        w.WriteString("role"u8, "assistant"u8);

        var hasContent = root.TryGetProperty("content"u8, out var content) && content.ValueKind == JsonValueKind.Array;
        // Text blocks join into one string; thinking and server-tool blocks have no chat-completions equivalent.
        string? text = null;
        var textBlocks = 0;
        var toolUses = 0;
        if (hasContent)
        {
            foreach (var block in content.EnumerateArray())
            {
                var type = TypeOf(block);
                if (type == "text") textBlocks++;
                else if (type == "tool_use") toolUses++;
            }
            if (textBlocks == 1)
            {
                foreach (var block in content.EnumerateArray())
                    if (TypeOf(block) == "text") text = StringOf(block, "text"u8);
            }
            else if (textBlocks > 1)
            {
                var sb = new System.Text.StringBuilder();
                foreach (var block in content.EnumerateArray())
                    if (TypeOf(block) == "text") sb.Append(StringOf(block, "text"u8));
                text = sb.ToString();
            }
        }
        if (text is null) w.WriteNull("content"u8);
        else w.WriteString("content"u8, text);
        if (toolUses > 0)
        {
            w.WriteStartArray("tool_calls"u8);
            foreach (var block in content.EnumerateArray())
            {
                if (TypeOf(block) != "tool_use") continue;
                w.WriteStartObject();
                w.WriteString("id"u8, StringOf(block, "id"u8));
                w.WriteString("type"u8, "function"u8);
                w.WriteStartObject("function"u8);
                w.WriteString("name"u8, StringOf(block, "name"u8));
                w.WriteString("arguments"u8, block.TryGetProperty("input"u8, out var input) && input.ValueKind == JsonValueKind.Object
                    ? input.GetRawText()
                    : "{}");
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteNull("refusal"u8);
        w.WriteEndObject();
        w.WriteNull("logprobs"u8);
        w.WriteString("finish_reason"u8, WireMapping.FinishReason(StringOf(root, "stop_reason"u8)));
        w.WriteEndObject();
        w.WriteEndArray();
        w.WritePropertyName("usage"u8);
        WireMapping.WriteOpenAIUsage(w, usage);
        w.WriteEndObject();
    }

    private static void OpenAIToAnthropic(Utf8JsonWriter w, JsonElement root, Usage usage, string clientModel)
    {
        JsonElement choice = default, message = default;
        if (root.TryGetProperty("choices"u8, out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
        {
            choice = choices[0];
            if (choice.ValueKind == JsonValueKind.Object) message = choice.TryGetProperty("message"u8, out var m) ? m : default;
        }

        w.WriteStartObject();
        w.WriteString("id"u8, WireMapping.AnthropicId(StringOf(root, "id"u8)));
        w.WriteString("type"u8, "message"u8);
        w.WriteString("role"u8, "assistant"u8);
        w.WriteString("model"u8, clientModel);
        w.WriteStartArray("content"u8);
        if (message.ValueKind == JsonValueKind.Object)
        {
            if (message.TryGetProperty("content"u8, out var content)) WriteTextBlocks(w, content);
            if (message.TryGetProperty("refusal"u8, out var refusal) && refusal.ValueKind == JsonValueKind.String && refusal.GetString() is { Length: > 0 } r)
                WriteText(w, r);
            if (message.TryGetProperty("tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in calls.EnumerateArray())
                {
                    if (call.ValueKind != JsonValueKind.Object) continue;
                    var fn = call.TryGetProperty("function"u8, out var f) && f.ValueKind == JsonValueKind.Object ? f : default;
                    w.WriteStartObject();
                    w.WriteString("type"u8, "tool_use"u8);
                    AnthropicAdapter.WriteToolId(w, "id"u8, StringOf(call, "id"u8) ?? "");
                    w.WriteString("name"u8, fn.ValueKind == JsonValueKind.Object ? StringOf(fn, "name"u8) ?? "" : "");
                    AnthropicAdapter.WriteInput(w, fn.ValueKind == JsonValueKind.Object ? StringOf(fn, "arguments"u8) : null);
                    w.WriteEndObject();
                }
            }
        }
        w.WriteEndArray();
        var finish = choice.ValueKind == JsonValueKind.Object ? StringOf(choice, "finish_reason"u8) : null;
        w.WriteString("stop_reason"u8, WireMapping.StopReason(finish));
        w.WriteNull("stop_sequence"u8);
        w.WritePropertyName("usage"u8);
        WireMapping.WriteAnthropicUsage(w, usage, cacheCreationBreakdown: true);
        w.WriteEndObject();
    }

    /// <summary>OpenAI content: a string, null, or (from some compatible servers) an array of text parts.</summary>
    private static void WriteTextBlocks(Utf8JsonWriter w, JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            if (content.GetString() is { Length: > 0 } s) WriteText(w, s);
        }
        else if (content.ValueKind == JsonValueKind.Array)
        {
            foreach (var part in content.EnumerateArray())
                if (part.ValueKind == JsonValueKind.Object && StringOf(part, "text"u8) is { Length: > 0 } t) WriteText(w, t);
        }
    }

    private static void WriteText(Utf8JsonWriter w, string text)
    {
        w.WriteStartObject();
        w.WriteString("type"u8, "text"u8);
        w.WriteString("text"u8, text);
        w.WriteEndObject();
    }

    private static string? TypeOf(JsonElement block) => block.ValueKind == JsonValueKind.Object ? StringOf(block, "type"u8) : null;

    private static string? StringOf(JsonElement o, ReadOnlySpan<byte> name) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}

/// <summary>The small vocabulary both directions share: ids, stop reasons, usage objects, error types.</summary>
internal static class WireMapping
{
    /// <summary><c>msg_X</c> → <c>chatcmpl-X</c>: the client sees an id of its own shape that still names the upstream call.</summary>
    public static string OpenAIId(string? upstreamId)
    {
        if (string.IsNullOrEmpty(upstreamId)) return "chatcmpl-tokenrouter";
        return string.Concat("chatcmpl-", upstreamId.StartsWith("msg_", StringComparison.Ordinal) ? upstreamId.AsSpan(4) : upstreamId);
    }

    /// <summary><c>chatcmpl-X</c> → <c>msg_X</c>.</summary>
    public static string AnthropicId(string? upstreamId)
    {
        if (string.IsNullOrEmpty(upstreamId)) return "msg_tokenrouter";
        return string.Concat("msg_", upstreamId.StartsWith("chatcmpl-", StringComparison.Ordinal) ? upstreamId.AsSpan(9) : upstreamId);
    }

    /// <summary>Anthropic <c>stop_reason</c> → OpenAI <c>finish_reason</c>.</summary>
    public static string FinishReason(string? stopReason) => stopReason switch
    {
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn, or missing
    };

    public static string FinishReason(ReadOnlySpan<byte> stopReason) =>
        stopReason.SequenceEqual("max_tokens"u8) || stopReason.SequenceEqual("model_context_window_exceeded"u8) ? "length"
        : stopReason.SequenceEqual("tool_use"u8) ? "tool_calls"
        : stopReason.SequenceEqual("refusal"u8) ? "content_filter"
        : "stop";

    /// <summary>OpenAI <c>finish_reason</c> → Anthropic <c>stop_reason</c>. OpenAI does not say which stop
    /// sequence ended a completion, so <c>stop</c> maps to <c>end_turn</c>.</summary>
    public static string StopReason(string? finishReason) => finishReason switch
    {
        "length" => "max_tokens",
        "tool_calls" or "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    };

    public static string StopReason(ReadOnlySpan<byte> finishReason) =>
        finishReason.SequenceEqual("length"u8) ? "max_tokens"
        : finishReason.SequenceEqual("tool_calls"u8) || finishReason.SequenceEqual("function_call"u8) ? "tool_use"
        : finishReason.SequenceEqual("content_filter"u8) ? "refusal"
        : "end_turn";

    /// <summary>OpenAI usage: <c>prompt_tokens</c> is the whole input, <c>cached_tokens</c> the part read from cache.</summary>
    public static void WriteOpenAIUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject();
        w.WriteNumber("prompt_tokens"u8, usage.PromptTokens);
        w.WriteNumber("completion_tokens"u8, usage.CompletionTokens);
        w.WriteNumber("total_tokens"u8, usage.TotalTokens);
        w.WriteStartObject("prompt_tokens_details"u8);
        w.WriteNumber("cached_tokens"u8, usage.CachedReadTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Anthropic usage: <c>input_tokens</c> is only the uncached rest; reads and writes are reported apart.</summary>
    public static void WriteAnthropicUsage(Utf8JsonWriter w, Usage usage, bool cacheCreationBreakdown)
    {
        w.WriteStartObject();
        w.WriteNumber("input_tokens"u8, usage.UncachedInputTokens);
        w.WriteNumber("cache_creation_input_tokens"u8, usage.CacheWriteTokens);
        w.WriteNumber("cache_read_input_tokens"u8, usage.CachedReadTokens);
        if (cacheCreationBreakdown)
        {
            w.WriteStartObject("cache_creation"u8);
            w.WriteNumber("ephemeral_5m_input_tokens"u8, usage.CacheWrite5mTokens);
            w.WriteNumber("ephemeral_1h_input_tokens"u8, usage.CacheWrite1hTokens);
            w.WriteEndObject();
        }
        w.WriteNumber("output_tokens"u8, usage.CompletionTokens);
        w.WriteEndObject();
    }

    /// <summary>OpenAI error <c>type</c>/<c>code</c> → Anthropic's fixed error types.</summary>
    public static string AnthropicErrorType(string? openAIType, string? code)
    {
        var t = openAIType ?? code ?? "";
        if (t.Contains("rate_limit", StringComparison.Ordinal) || t == "insufficient_quota") return "rate_limit_error";
        if (t.Contains("overloaded", StringComparison.Ordinal)) return "overloaded_error";
        if (t.Contains("invalid_request", StringComparison.Ordinal)) return "invalid_request_error";
        if (t.Contains("authentication", StringComparison.Ordinal)) return "authentication_error";
        if (t.Contains("permission", StringComparison.Ordinal)) return "permission_error";
        if (t.Contains("not_found", StringComparison.Ordinal)) return "not_found_error";
        return "api_error";
    }
}
