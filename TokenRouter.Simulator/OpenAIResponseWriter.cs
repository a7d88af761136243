using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>OpenAI chat-completion JSON and SSE chunks; DeepSeek adds its cache usage fields.</summary>
internal static class OpenAIResponseWriter
{
    private const string Fingerprint = "fp_sim";

    public static string NewId(SimFormat format) =>
        format == SimFormat.DeepSeek ? Guid.NewGuid().ToString() : SimIds.New("chatcmpl-sim");

    public static void WriteCompletion(Utf8JsonWriter w, SimFormat format, SimCompletion c, string id, long created)
    {
        var reply = c.Reply;
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", created);
        w.WriteString("model", c.Model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("message");
        w.WriteString("role", "assistant");
        w.WriteString("content", reply.Text);
        if (format == SimFormat.OpenAI)
            w.WriteNull("refusal");
        if (reply.ToolCall is { } call)
        {
            w.WriteStartArray("tool_calls");
            w.WriteStartObject();
            w.WriteString("id", CallId(id));
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            w.WriteString("name", call.Name);
            w.WriteString("arguments", call.ArgumentsJson);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
        }

        if (format == SimFormat.OpenAI)
        {
            w.WriteStartArray("annotations");
            w.WriteEndArray();
        }

        w.WriteEndObject();
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", FinishReason(reply));
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, format, c.Usage);
        if (format == SimFormat.OpenAI)
            w.WriteString("service_tier", "default");
        w.WriteString("system_fingerprint", Fingerprint);
        w.WriteEndObject();
    }

    public static async Task StreamAsync(SimSseWriter sse, SimFormat format, SimCompletion c, string id, long created)
    {
        var reply = c.Reply;

        var w = BeginChunk(sse, c, id, created);
        w.WriteStartObject("delta");
        w.WriteString("role", "assistant");
        w.WriteString("content", reply.IsToolCall ? null : "");
        if (format == SimFormat.OpenAI)
            w.WriteNull("refusal");
        w.WriteEndObject();
        await EndChunkAsync(sse, c, finishReason: null);

        if (reply.ToolCall is { } call)
        {
            w = BeginChunk(sse, c, id, created);
            w.WriteStartObject("delta");
            w.WriteStartArray("tool_calls");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            w.WriteString("id", CallId(id));
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            w.WriteString("name", call.Name);
            w.WriteString("arguments", "");
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            await EndChunkAsync(sse, c, finishReason: null);

            foreach (var piece in SimReply.SplitArguments(call.ArgumentsJson))
            {
                w = BeginChunk(sse, c, id, created);
                w.WriteStartObject("delta");
                w.WriteStartArray("tool_calls");
                w.WriteStartObject();
                w.WriteNumber("index", 0);
                w.WriteStartObject("function");
                w.WriteString("arguments", piece);
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
                await EndChunkAsync(sse, c, finishReason: null);
            }
        }
        else if (reply.Text is { Length: > 0 } text)
        {
            foreach (var piece in SimReply.SplitText(text))
            {
                w = BeginChunk(sse, c, id, created);
                w.WriteStartObject("delta");
                w.WriteString("content", piece);
                w.WriteEndObject();
                await EndChunkAsync(sse, c, finishReason: null);
            }
        }

        w = BeginChunk(sse, c, id, created);
        w.WriteStartObject("delta");
        w.WriteEndObject();
        await EndChunkAsync(sse, c, FinishReason(reply));

        // The usage chunk (empty choices) exists only when the client asked for it.
        if (c.IncludeUsage)
        {
            w = sse.Begin();
            WriteChunkHeader(w, c, id, created);
            w.WriteStartArray("choices");
            w.WriteEndArray();
            WriteUsage(w, format, c.Usage);
            w.WriteEndObject();
            await sse.EndAsync();
        }

        await sse.WriteDoneAsync();
    }

    private static Utf8JsonWriter BeginChunk(SimSseWriter sse, SimCompletion c, string id, long created)
    {
        var w = sse.Begin();
        WriteChunkHeader(w, c, id, created);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        return w;
    }

    private static ValueTask EndChunkAsync(SimSseWriter sse, SimCompletion c, string? finishReason)
    {
        // Called with the choice object open: close it, the array and the chunk.
        var w = sse.Json;
        w.WriteNull("logprobs");
        w.WriteString("finish_reason", finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        if (c.IncludeUsage)
            w.WriteNull("usage");
        w.WriteEndObject();
        return sse.EndAsync();
    }

    private static void WriteChunkHeader(Utf8JsonWriter w, SimCompletion c, string id, long created)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", c.Model);
        w.WriteString("system_fingerprint", Fingerprint);
    }

    private static void WriteUsage(Utf8JsonWriter w, SimFormat format, SimUsage u)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", u.PromptTokens);
        w.WriteNumber("completion_tokens", u.OutputTokens);
        w.WriteNumber("total_tokens", u.PromptTokens + u.OutputTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", u.CacheReadTokens);
        if (format == SimFormat.OpenAI)
            w.WriteNumber("audio_tokens", 0);
        w.WriteEndObject();
        if (format == SimFormat.DeepSeek)
        {
            w.WriteNumber("prompt_cache_hit_tokens", u.CacheReadTokens);
            w.WriteNumber("prompt_cache_miss_tokens", u.PromptTokens - u.CacheReadTokens);
        }
        else
        {
            w.WriteStartObject("completion_tokens_details");
            w.WriteNumber("reasoning_tokens", 0);
            w.WriteNumber("audio_tokens", 0);
            w.WriteNumber("accepted_prediction_tokens", 0);
            w.WriteNumber("rejected_prediction_tokens", 0);
            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    private static string FinishReason(SimReply reply) =>
        reply.IsToolCall ? "tool_calls" : reply.Truncated ? "length" : "stop";

    private static string CallId(string responseId) => "call_" + responseId[^12..];
}
