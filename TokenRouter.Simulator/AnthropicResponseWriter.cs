using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>Anthropic message JSON and its SSE event sequence.</summary>
internal static class AnthropicResponseWriter
{
    public static string NewId() => SimIds.New("msg_sim");

    public static void WriteMessage(Utf8JsonWriter w, SimCompletion c, string id)
    {
        w.WriteStartObject();
        WriteMessageHeader(w, c, id);
        w.WriteStartArray("content");
        if (c.Reply.ToolCall is { } call)
        {
            w.WriteStartObject();
            w.WriteString("type", "tool_use");
            w.WriteString("id", ToolUseId(id));
            w.WriteString("name", call.Name);
            w.WritePropertyName("input");
            w.WriteRawValue(call.ArgumentsJson, skipInputValidation: true);
            w.WriteEndObject();
        }
        else if (c.Reply.Text is { Length: > 0 } text)
        {
            w.WriteStartObject();
            w.WriteString("type", "text");
            w.WriteString("text", text);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteString("stop_reason", StopReason(c.Reply));
        w.WriteNull("stop_sequence");
        WriteUsage(w, c.Usage, c.Usage.OutputTokens, full: true);
        w.WriteEndObject();
    }

    public static async Task StreamAsync(SimSseWriter sse, SimCompletion c, string id)
    {
        var w = sse.Begin("message_start");
        w.WriteStartObject();
        w.WriteString("type", "message_start");
        w.WriteStartObject("message");
        WriteMessageHeader(w, c, id);
        w.WriteStartArray("content");
        w.WriteEndArray();
        w.WriteNull("stop_reason");
        w.WriteNull("stop_sequence");
        // Like the real API, message_start carries the input usage and a provisional output count.
        WriteUsage(w, c.Usage, Math.Min(1, c.Usage.OutputTokens), full: true);
        w.WriteEndObject();
        w.WriteEndObject();
        await sse.EndAsync();

        w = sse.Begin("ping");
        w.WriteStartObject();
        w.WriteString("type", "ping");
        w.WriteEndObject();
        await sse.EndAsync();

        if (c.Reply.ToolCall is { } call)
        {
            w = BeginBlockStart(sse);
            w.WriteString("type", "tool_use");
            w.WriteString("id", ToolUseId(id));
            w.WriteString("name", call.Name);
            w.WriteStartObject("input");
            w.WriteEndObject();
            await EndBlockStartAsync(sse);

            foreach (var piece in SimReply.SplitArguments(call.ArgumentsJson))
            {
                w = BeginDelta(sse);
                w.WriteString("type", "input_json_delta");
                w.WriteString("partial_json", piece);
                await EndDeltaAsync(sse);
            }

            await BlockStopAsync(sse);
        }
        else if (c.Reply.Text is { Length: > 0 } text)
        {
            w = BeginBlockStart(sse);
            w.WriteString("type", "text");
            w.WriteString("text", "");
            await EndBlockStartAsync(sse);

            foreach (var piece in SimReply.SplitText(text))
            {
                w = BeginDelta(sse);
                w.WriteString("type", "text_delta");
                w.WriteString("text", piece);
                await EndDeltaAsync(sse);
            }

            await BlockStopAsync(sse);
        }

        w = sse.Begin("message_delta");
        w.WriteStartObject();
        w.WriteString("type", "message_delta");
        w.WriteStartObject("delta");
        w.WriteString("stop_reason", StopReason(c.Reply));
        w.WriteNull("stop_sequence");
        w.WriteEndObject();
        WriteUsage(w, c.Usage, c.Usage.OutputTokens, full: false);
        w.WriteEndObject();
        await sse.EndAsync();

        w = sse.Begin("message_stop");
        w.WriteStartObject();
        w.WriteString("type", "message_stop");
        w.WriteEndObject();
        await sse.EndAsync(last: true);
    }

    private static Utf8JsonWriter BeginBlockStart(SimSseWriter sse)
    {
        var w = sse.Begin("content_block_start");
        w.WriteStartObject();
        w.WriteString("type", "content_block_start");
        w.WriteNumber("index", 0);
        w.WriteStartObject("content_block");
        return w;
    }

    private static ValueTask EndBlockStartAsync(SimSseWriter sse)
    {
        sse.Json.WriteEndObject();
        sse.Json.WriteEndObject();
        return sse.EndAsync();
    }

    private static Utf8JsonWriter BeginDelta(SimSseWriter sse)
    {
        var w = sse.Begin("content_block_delta");
        w.WriteStartObject();
        w.WriteString("type", "content_block_delta");
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        return w;
    }

    private static ValueTask EndDeltaAsync(SimSseWriter sse) => EndBlockStartAsync(sse);

    private static ValueTask BlockStopAsync(SimSseWriter sse)
    {
        var w = sse.Begin("content_block_stop");
        w.WriteStartObject();
        w.WriteString("type", "content_block_stop");
        w.WriteNumber("index", 0);
        w.WriteEndObject();
        return sse.EndAsync();
    }

    private static void WriteMessageHeader(Utf8JsonWriter w, SimCompletion c, string id)
    {
        w.WriteString("id", id);
        w.WriteString("type", "message");
        w.WriteString("role", "assistant");
        w.WriteString("model", c.Model);
    }

    /// <summary>input_tokens is the uncached rest: total − cache reads − cache writes.</summary>
    private static void WriteUsage(Utf8JsonWriter w, SimUsage u, int outputTokens, bool full)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("input_tokens", u.UncachedInputTokens);
        w.WriteNumber("cache_creation_input_tokens", u.CacheWrite5mTokens + u.CacheWrite1hTokens);
        w.WriteNumber("cache_read_input_tokens", u.CacheReadTokens);
        if (full)
        {
            w.WriteStartObject("cache_creation");
            w.WriteNumber("ephemeral_5m_input_tokens", u.CacheWrite5mTokens);
            w.WriteNumber("ephemeral_1h_input_tokens", u.CacheWrite1hTokens);
            w.WriteEndObject();
        }

        w.WriteNumber("output_tokens", outputTokens);
        if (full)
            w.WriteString("service_tier", "standard");
        w.WriteEndObject();
    }

    private static string StopReason(SimReply reply) =>
        reply.IsToolCall ? "tool_use" : reply.Truncated ? "max_tokens" : "end_turn";

    private static string ToolUseId(string messageId) => "toolu_sim" + messageId[^16..];
}
