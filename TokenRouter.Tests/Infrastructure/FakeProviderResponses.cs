using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>Token usage an OpenAI-format answer reports. <paramref name="Cached"/> is part of <paramref name="Prompt"/>.</summary>
public sealed record OpenAIUsage(int Prompt, int Completion, int Cached = 0)
{
    public int Total => Prompt + Completion;
}

/// <summary>
/// Token usage an Anthropic answer reports. <paramref name="Input"/> is the uncached input only (as on the wire:
/// <c>input_tokens</c> excludes cache reads and writes).
/// </summary>
public sealed record AnthropicUsage(int Input, int Output, int CacheRead = 0, int CacheWrite5m = 0, int CacheWrite1h = 0)
{
    public int CacheWrite => CacheWrite5m + CacheWrite1h;
}

/// <summary>One server-sent event. <see cref="Event"/> is null for OpenAI-style events (data line only).</summary>
public sealed record SseEvent(string? Event, string Data)
{
    /// <summary>The event exactly as written to the wire, including the blank-line terminator.</summary>
    public string ToWire() => Event is null ? $"data: {Data}\n\n" : $"event: {Event}\ndata: {Data}\n\n";
}

/// <summary>
/// Canned responders for <see cref="FakeProvider.Respond"/> / <see cref="FakeProvider.RespondNext"/>, producing the
/// providers' real wire formats (OpenAI chat completions and chunks, DeepSeek usage fields, Anthropic messages and
/// stream events). Streaming vs. JSON is decided by the request body's <c>"stream": true</c>.
/// </summary>
public static class FakeResponses
{
    public const string DefaultText = "Hello from the fake provider.";
    public const string DefaultOpenAIModel = "gpt-4o-mini";
    public const string DefaultAnthropicModel = "claude-sonnet-4-5";
    public const string DefaultDeepSeekModel = "deepseek-chat";

    internal static readonly JsonSerializerOptions WireJson = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        WriteIndented = false,
    };

    /// <summary>Number of pieces text / arguments are split into when streamed (when long enough).</summary>
    public const int DefaultPieces = 4;

    // ───────────────────────────── responders ─────────────────────────────

    public static Func<RecordedRequest, HttpContext, Task> OpenAIText(string text, OpenAIUsage usage) =>
        (request, context) => ServeAsync(request, context, new OpenAIAnswer(OpenAIFlavor.OpenAI, text, null, null, usage), TimeSpan.Zero, null);

    public static Func<RecordedRequest, HttpContext, Task> OpenAIToolCall(string toolName, string argumentsJson, OpenAIUsage usage) =>
        (request, context) => ServeAsync(request, context, new OpenAIAnswer(OpenAIFlavor.OpenAI, null, toolName, argumentsJson, usage), TimeSpan.Zero, null);

    /// <summary>OpenAI format with DeepSeek's <c>prompt_cache_hit_tokens</c> / <c>prompt_cache_miss_tokens</c> usage fields.</summary>
    public static Func<RecordedRequest, HttpContext, Task> DeepSeekText(string text, OpenAIUsage usage) =>
        (request, context) => ServeAsync(request, context, new OpenAIAnswer(OpenAIFlavor.DeepSeek, text, null, null, usage), TimeSpan.Zero, null);

    public static Func<RecordedRequest, HttpContext, Task> AnthropicText(string text, AnthropicUsage usage) =>
        (request, context) => ServeAsync(request, context, new AnthropicAnswer(text, null, null, usage), TimeSpan.Zero, null);

    public static Func<RecordedRequest, HttpContext, Task> AnthropicToolUse(string name, string inputJson, AnthropicUsage usage) =>
        (request, context) => ServeAsync(request, context, new AnthropicAnswer(null, name, inputJson, usage), TimeSpan.Zero, null);

    /// <summary>Anthropic format for <c>.../messages</c> paths, OpenAI format otherwise (the provider's default).</summary>
    public static Func<RecordedRequest, HttpContext, Task> Auto(string text = DefaultText) =>
        (request, context) => ServeAsync(request, context, AutoAnswer(request, text), TimeSpan.Zero, null);

    /// <summary>Answers <paramref name="status"/> with exactly <paramref name="body"/>.</summary>
    public static Func<RecordedRequest, HttpContext, Task> Error(int status, string body, string contentType = "application/json") =>
        async (_, context) =>
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Response.StatusCode = status;
            context.Response.ContentType = contentType;
            context.Response.ContentLength = bytes.Length;
            await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
        };

    /// <summary>Never answers; completes only when the request is aborted (the provider then counts it as cancelled).</summary>
    public static Func<RecordedRequest, HttpContext, Task> Hang() =>
        (_, context) => Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted);

    /// <summary>
    /// Streams the first <paramref name="eventsBeforeDrop"/> events of a valid stream (OpenAI, or Anthropic for
    /// <c>.../messages</c>), then aborts the connection. A non-streaming request gets half of its JSON body, then the abort.
    /// </summary>
    public static Func<RecordedRequest, HttpContext, Task> StreamThenDrop(int eventsBeforeDrop)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(eventsBeforeDrop);
        var words = Enumerable.Range(1, eventsBeforeDrop + DefaultPieces + 2).Select(i => $"word{i} ").ToArray();
        return (request, context) =>
            ServeAsync(request, context, AutoAnswer(request, string.Concat(words), words), TimeSpan.Zero, eventsBeforeDrop);
    }

    /// <summary>A valid stream (format by path) with <paramref name="delayBetweenEvents"/> between events; JSON after one delay when not streaming.</summary>
    public static Func<RecordedRequest, HttpContext, Task> SlowStream(TimeSpan delayBetweenEvents, string text = DefaultText) =>
        (request, context) => ServeAsync(request, context, AutoAnswer(request, text), delayBetweenEvents, null);

    /// <summary>Waits <paramref name="delay"/> (cancelled if the client gives up), then runs <paramref name="then"/>.</summary>
    public static Func<RecordedRequest, HttpContext, Task> After(TimeSpan delay, Func<RecordedRequest, HttpContext, Task> then) =>
        async (request, context) =>
        {
            await Task.Delay(delay, context.RequestAborted);
            await then(request, context);
        };

    // ───────────────────────────── error bodies ─────────────────────────────

    /// <summary>OpenAI's error envelope: <c>{"error":{"message","type","param","code"}}</c>.</summary>
    public static string OpenAIErrorBody(string message, string type = "server_error", string? code = null) =>
        new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["message"] = message,
                ["type"] = type,
                ["param"] = null,
                ["code"] = code,
            },
        }.ToJsonString(WireJson);

    /// <summary>Anthropic's error envelope: <c>{"type":"error","error":{"type","message"}}</c>.</summary>
    public static string AnthropicErrorBody(string type, string message) =>
        new JsonObject
        {
            ["type"] = "error",
            ["error"] = new JsonObject { ["type"] = type, ["message"] = message },
        }.ToJsonString(WireJson);

    // ───────────────────────────── wire builders ─────────────────────────────

    /// <summary>The non-streaming OpenAI chat completion body for a text answer.</summary>
    public static string BuildOpenAITextCompletion(string text, OpenAIUsage usage, string model = DefaultOpenAIModel) =>
        new OpenAIAnswer(OpenAIFlavor.OpenAI, text, null, null, usage).BuildJson(model);

    /// <summary>The OpenAI SSE events (ending with <c>[DONE]</c>) for a text answer.</summary>
    public static IReadOnlyList<SseEvent> BuildOpenAITextStream(string text, OpenAIUsage usage, bool includeUsage, string model = DefaultOpenAIModel, int pieces = DefaultPieces) =>
        new OpenAIAnswer(OpenAIFlavor.OpenAI, text, null, null, usage, pieces).BuildEvents(model, includeUsage);

    /// <summary>The non-streaming Anthropic message body for a text answer.</summary>
    public static string BuildAnthropicTextMessage(string text, AnthropicUsage usage, string model = DefaultAnthropicModel) =>
        new AnthropicAnswer(text, null, null, usage).BuildJson(model);

    /// <summary>The Anthropic SSE events (message_start … message_stop) for a text answer.</summary>
    public static IReadOnlyList<SseEvent> BuildAnthropicTextStream(string text, AnthropicUsage usage, string model = DefaultAnthropicModel, int pieces = DefaultPieces) =>
        new AnthropicAnswer(text, null, null, usage, pieces).BuildEvents(model, includeUsage: true);

    /// <summary>Splits <paramref name="value"/> into up to <paramref name="pieces"/> non-empty parts (never inside a surrogate pair).</summary>
    public static IReadOnlyList<string> Split(string value, int pieces)
    {
        if (value.Length == 0)
        {
            return [];
        }

        var size = Math.Max(1, (int)Math.Ceiling(value.Length / (double)Math.Max(1, pieces)));
        var parts = new List<string>();
        var start = 0;
        while (start < value.Length)
        {
            var length = Math.Min(size, value.Length - start);
            if (start + length < value.Length && char.IsHighSurrogate(value[start + length - 1]))
            {
                length++;
            }

            parts.Add(value.Substring(start, length));
            start += length;
        }

        return parts;
    }

    // ───────────────────────────── serving ─────────────────────────────

    private static Answer AutoAnswer(RecordedRequest request, string text, IReadOnlyList<string>? pieces = null) =>
        request.IsAnthropicMessages
            ? new AnthropicAnswer(text, null, null, new AnthropicUsage(10, 5)) { ExplicitPieces = pieces }
            : new OpenAIAnswer(OpenAIFlavor.OpenAI, text, null, null, new OpenAIUsage(10, 5)) { ExplicitPieces = pieces };

    private static async Task ServeAsync(RecordedRequest request, HttpContext context, Answer answer, TimeSpan delayBetweenEvents, int? dropAfterEvents)
    {
        var ct = context.RequestAborted;
        var model = request.Model ?? answer.DefaultModel;
        context.Response.Headers[answer.RequestIdHeader] = "req_" + RandomId(24);

        if (!request.IsStreaming)
        {
            var bytes = Encoding.UTF8.GetBytes(answer.BuildJson(model));
            if (delayBetweenEvents > TimeSpan.Zero)
            {
                await Task.Delay(delayBetweenEvents, ct);
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = bytes.Length;
            if (dropAfterEvents is null)
            {
                await context.Response.Body.WriteAsync(bytes, ct);
                return;
            }

            await context.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2), ct);
            await context.Response.Body.FlushAsync(ct);
            await FakeProvider.DropConnectionAsync(context);
            return;
        }

        var events = answer.BuildEvents(model, request.IncludeUsage);
        await StartEventStreamAsync(context);
        for (var i = 0; i < events.Count; i++)
        {
            if (dropAfterEvents == i)
            {
                await FakeProvider.DropConnectionAsync(context);
                return;
            }

            if (i > 0 && delayBetweenEvents > TimeSpan.Zero)
            {
                await Task.Delay(delayBetweenEvents, ct);
            }

            await WriteEventAsync(context, events[i]);
        }

        if (dropAfterEvents is not null)
        {
            await FakeProvider.DropConnectionAsync(context);
        }
    }

    /// <summary>Sends 200 + SSE headers (<c>text/event-stream</c>, no buffering) and flushes them.</summary>
    public static async Task StartEventStreamAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await context.Response.StartAsync(context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }

    /// <summary>Writes one event and flushes it.</summary>
    public static async Task WriteEventAsync(HttpContext context, SseEvent sseEvent)
    {
        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(sseEvent.ToWire()), context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }

    private static string RandomId(int length)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        return RandomNumberGenerator.GetString(alphabet, length);
    }

    private static long UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    private enum OpenAIFlavor
    {
        OpenAI,
        DeepSeek,
    }

    private abstract record Answer
    {
        public abstract string DefaultModel { get; }

        public abstract string RequestIdHeader { get; }

        public abstract string BuildJson(string model);

        public abstract IReadOnlyList<SseEvent> BuildEvents(string model, bool includeUsage);

        /// <summary>When set, the streamed text is exactly these pieces instead of an even split.</summary>
        public IReadOnlyList<string>? ExplicitPieces { get; init; }

        protected IReadOnlyList<string> PiecesOf(string value, int pieces) => ExplicitPieces ?? Split(value, pieces);
    }

    private sealed record OpenAIAnswer(
        OpenAIFlavor Flavor,
        string? Text,
        string? ToolName,
        string? ArgumentsJson,
        OpenAIUsage Usage,
        int Pieces = DefaultPieces) : Answer
    {
        public override string DefaultModel => Flavor == OpenAIFlavor.DeepSeek ? DefaultDeepSeekModel : DefaultOpenAIModel;

        public override string RequestIdHeader => "x-request-id";

        private bool IsToolCall => ToolName is not null;

        private string FinishReason => IsToolCall ? "tool_calls" : "stop";

        private string Fingerprint => Flavor == OpenAIFlavor.DeepSeek ? "fp_3a5770e1b4_prod0820_fp8_kvcache" : "fp_560af6e559";

        public override string BuildJson(string model)
        {
            var message = new JsonObject { ["role"] = "assistant", ["content"] = Text };
            if (IsToolCall)
            {
                message["tool_calls"] = new JsonArray(new JsonObject
                {
                    ["id"] = "call_" + RandomId(24),
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = ToolName, ["arguments"] = ArgumentsJson },
                });
            }

            if (Flavor == OpenAIFlavor.OpenAI)
            {
                message["refusal"] = null;
                message["annotations"] = new JsonArray();
            }

            var body = new JsonObject
            {
                ["id"] = NewId(),
                ["object"] = "chat.completion",
                ["created"] = UnixNow(),
                ["model"] = model,
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = message,
                    ["logprobs"] = null,
                    ["finish_reason"] = FinishReason,
                }),
                ["usage"] = UsageJson(),
            };
            AddTrailer(body);
            return body.ToJsonString(WireJson);
        }

        public override IReadOnlyList<SseEvent> BuildEvents(string model, bool includeUsage)
        {
            var id = NewId();
            var created = UnixNow();
            var events = new List<SseEvent>();

            JsonObject Chunk(JsonObject? delta, string? finishReason)
            {
                var chunk = new JsonObject
                {
                    ["id"] = id,
                    ["object"] = "chat.completion.chunk",
                    ["created"] = created,
                    ["model"] = model,
                };
                AddTrailer(chunk);
                chunk["choices"] = delta is null
                    ? new JsonArray()
                    : new JsonArray(new JsonObject
                    {
                        ["index"] = 0,
                        ["delta"] = delta,
                        ["logprobs"] = null,
                        ["finish_reason"] = finishReason,
                    });
                if (includeUsage)
                {
                    chunk["usage"] = null;
                }

                return chunk;
            }

            void Add(JsonObject chunk) => events.Add(new SseEvent(null, chunk.ToJsonString(WireJson)));

            if (IsToolCall)
            {
                var first = new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = null,
                    ["tool_calls"] = new JsonArray(new JsonObject
                    {
                        ["index"] = 0,
                        ["id"] = "call_" + RandomId(24),
                        ["type"] = "function",
                        ["function"] = new JsonObject { ["name"] = ToolName, ["arguments"] = "" },
                    }),
                };
                if (Flavor == OpenAIFlavor.OpenAI)
                {
                    first["refusal"] = null;
                }

                Add(Chunk(first, null));
                foreach (var piece in PiecesOf(ArgumentsJson ?? "", Pieces))
                {
                    Add(Chunk(
                        new JsonObject
                        {
                            ["tool_calls"] = new JsonArray(new JsonObject
                            {
                                ["index"] = 0,
                                ["function"] = new JsonObject { ["arguments"] = piece },
                            }),
                        },
                        null));
                }
            }
            else
            {
                var first = new JsonObject { ["role"] = "assistant", ["content"] = "" };
                if (Flavor == OpenAIFlavor.OpenAI)
                {
                    first["refusal"] = null;
                }

                Add(Chunk(first, null));
                foreach (var piece in PiecesOf(Text ?? "", Pieces))
                {
                    Add(Chunk(new JsonObject { ["content"] = piece }, null));
                }
            }

            Add(Chunk(new JsonObject(), FinishReason));
            if (includeUsage)
            {
                var usageChunk = Chunk(null, null);
                usageChunk["usage"] = UsageJson();
                Add(usageChunk);
            }

            events.Add(new SseEvent(null, "[DONE]"));
            return events;
        }

        private string NewId() => Flavor == OpenAIFlavor.DeepSeek ? Guid.NewGuid().ToString() : "chatcmpl-" + RandomId(29);

        private void AddTrailer(JsonObject body)
        {
            if (Flavor == OpenAIFlavor.OpenAI)
            {
                body["service_tier"] = "default";
            }

            body["system_fingerprint"] = Fingerprint;
        }

        private JsonObject UsageJson()
        {
            var usage = new JsonObject
            {
                ["prompt_tokens"] = Usage.Prompt,
                ["completion_tokens"] = Usage.Completion,
                ["total_tokens"] = Usage.Total,
            };
            if (Flavor == OpenAIFlavor.DeepSeek)
            {
                usage["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = Usage.Cached };
                usage["prompt_cache_hit_tokens"] = Usage.Cached;
                usage["prompt_cache_miss_tokens"] = Usage.Prompt - Usage.Cached;
            }
            else
            {
                usage["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = Usage.Cached, ["audio_tokens"] = 0 };
                usage["completion_tokens_details"] = new JsonObject
                {
                    ["reasoning_tokens"] = 0,
                    ["audio_tokens"] = 0,
                    ["accepted_prediction_tokens"] = 0,
                    ["rejected_prediction_tokens"] = 0,
                };
            }

            return usage;
        }
    }

    private sealed record AnthropicAnswer(
        string? Text,
        string? ToolName,
        string? InputJson,
        AnthropicUsage Usage,
        int Pieces = DefaultPieces) : Answer
    {
        public override string DefaultModel => DefaultAnthropicModel;

        public override string RequestIdHeader => "request-id";

        private bool IsToolUse => ToolName is not null;

        private string StopReason => IsToolUse ? "tool_use" : "end_turn";

        public override string BuildJson(string model)
        {
            var block = IsToolUse
                ? new JsonObject
                {
                    ["type"] = "tool_use",
                    ["id"] = "toolu_01" + RandomId(22),
                    ["name"] = ToolName,
                    ["input"] = JsonNode.Parse(InputJson ?? "{}"),
                }
                : new JsonObject { ["type"] = "text", ["text"] = Text };
            var message = MessageShell(model, new JsonArray(block), StopReason, UsageJson(Usage.Output));
            return message.ToJsonString(WireJson);
        }

        public override IReadOnlyList<SseEvent> BuildEvents(string model, bool includeUsage)
        {
            var events = new List<SseEvent>();

            void Add(string type, JsonObject data)
            {
                var payload = new JsonObject { ["type"] = type };
                foreach (var (key, value) in data.ToList())
                {
                    data.Remove(key);
                    payload[key] = value;
                }

                events.Add(new SseEvent(type, payload.ToJsonString(WireJson)));
            }

            Add("message_start", new JsonObject
            {
                ["message"] = MessageShell(model, new JsonArray(), null, UsageJson(Math.Min(1, Usage.Output))),
            });

            JsonObject startBlock;
            IEnumerable<JsonObject> deltas;
            if (IsToolUse)
            {
                startBlock = new JsonObject
                {
                    ["type"] = "tool_use",
                    ["id"] = "toolu_01" + RandomId(22),
                    ["name"] = ToolName,
                    ["input"] = new JsonObject(),
                };
                deltas = new[] { "" }.Concat(PiecesOf(InputJson ?? "", Pieces))
                    .Select(piece => new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = piece });
            }
            else
            {
                startBlock = new JsonObject { ["type"] = "text", ["text"] = "" };
                deltas = PiecesOf(Text ?? "", Pieces).Select(piece => new JsonObject { ["type"] = "text_delta", ["text"] = piece });
            }

            Add("content_block_start", new JsonObject { ["index"] = 0, ["content_block"] = startBlock });
            events.Add(new SseEvent("ping", "{\"type\": \"ping\"}"));
            foreach (var delta in deltas)
            {
                Add("content_block_delta", new JsonObject { ["index"] = 0, ["delta"] = delta });
            }

            Add("content_block_stop", new JsonObject { ["index"] = 0 });
            Add("message_delta", new JsonObject
            {
                ["delta"] = new JsonObject { ["stop_reason"] = StopReason, ["stop_sequence"] = null },
                ["usage"] = new JsonObject
                {
                    ["input_tokens"] = Usage.Input,
                    ["cache_creation_input_tokens"] = Usage.CacheWrite,
                    ["cache_read_input_tokens"] = Usage.CacheRead,
                    ["output_tokens"] = Usage.Output,
                },
            });
            Add("message_stop", new JsonObject());
            return events;
        }

        private static JsonObject MessageShell(string model, JsonArray content, string? stopReason, JsonObject usage) => new()
        {
            ["id"] = "msg_01" + RandomId(22),
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = content,
            ["stop_reason"] = stopReason,
            ["stop_sequence"] = null,
            ["usage"] = usage,
        };

        private JsonObject UsageJson(int outputTokens) => new()
        {
            ["input_tokens"] = Usage.Input,
            ["cache_creation_input_tokens"] = Usage.CacheWrite,
            ["cache_read_input_tokens"] = Usage.CacheRead,
            ["cache_creation"] = new JsonObject
            {
                ["ephemeral_5m_input_tokens"] = Usage.CacheWrite5m,
                ["ephemeral_1h_input_tokens"] = Usage.CacheWrite1h,
            },
            ["output_tokens"] = outputTokens,
            ["service_tier"] = "standard",
        };
    }
}
