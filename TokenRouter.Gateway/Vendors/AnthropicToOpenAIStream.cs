using System.Buffers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Gateway.Vendors;

/// <summary>
/// Anthropic-format provider → OpenAI client. Emits a role chunk, content and tool-call deltas (tool calls numbered
/// in the order their blocks start), a finish chunk, the usage chunk when the client asked for it, and <c>[DONE]</c>.
/// Text and argument pieces are copied as raw JSON string tokens: no unescape and re-escape per delta.
/// </summary>
public sealed class AnthropicToOpenAIStream : IStreamTranslator
{
    private readonly bool _clientWantsUsage;
    private readonly string _model;
    private readonly long _created;
    private string _id = "chatcmpl-tokenrouter";
    private AnthropicUsageAccumulator _usage;
    private Utf8JsonWriter? _writer;

    // Anthropic content-block index → OpenAI tool_calls index (-1: not a tool_use block).
    private readonly IndexMap _toolIndexByBlock = new();
    private int _toolCount;
    private string? _finishReason;
    private bool _finishSent;

    public AnthropicToOpenAIStream(bool clientWantsUsage, string clientModel, TimeProvider? timeProvider = null)
    {
        _clientWantsUsage = clientWantsUsage;
        _model = clientModel;
        _created = (timeProvider ?? TimeProvider.System).GetUtcNow().ToUnixTimeSeconds();
    }

    public Usage Usage => _usage.ToUsage();
    public bool Finished { get; private set; }
    public bool Failed { get; private set; }

    public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (Finished || Failed) return;
        if (!SseEvents.IsJsonObject(data))
        {
            // Garbage from the provider must not end as an empty completion that looks like success.
            WriteError(SseEvents.NotJsonErrorEvent, output);
            return;
        }
        switch (AnthropicSse.Classify(eventName, data))
        {
            case AnthropicEventKind.ContentBlockDelta:
                OnBlockDelta(data, output);
                break;
            case AnthropicEventKind.ContentBlockStart:
                OnBlockStart(data, output);
                break;
            case AnthropicEventKind.MessageStart:
                OnMessageStart(data, output);
                break;
            case AnthropicEventKind.MessageDelta:
                OnMessageDelta(data, output);
                break;
            case AnthropicEventKind.MessageStop:
                if (!_finishSent) WriteFinish(output);
                if (_clientWantsUsage) WriteUsageChunk(output);
                SseWriter.WriteData(output, "[DONE]"u8);
                Finished = true;
                break;
            case AnthropicEventKind.Error:
                WriteError(data, output);
                break;
            default:
                // ping, content_block_stop and unknown events have no chat-completions counterpart.
                break;
        }
    }

    public void Complete(IBufferWriter<byte> output)
    {
    }

    private void OnMessageStart(ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (TryParse(data, out var doc))
        {
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("message"u8, out var message) && message.ValueKind == JsonValueKind.Object
                    && message.TryGetProperty("id"u8, out var id) && id.ValueKind == JsonValueKind.String)
                    _id = WireMapping.OpenAIId(id.GetString());
                AnthropicSse.ApplyUsage(ref _usage, AnthropicEventKind.MessageStart, root);
            }
        }
        var w = BeginChunk(output);
        w.WriteString("role"u8, "assistant"u8);
        w.WriteString("content"u8, ""u8);
        EndChunk(output, null);
    }

    private void OnBlockStart(ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (!TryParse(data, out var doc)) return;
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("index"u8, out var ix) || !ix.TryGetInt32(out var blockIndex) || blockIndex < 0
                || !root.TryGetProperty("content_block"u8, out var block) || block.ValueKind != JsonValueKind.Object
                || !block.TryGetProperty("type"u8, out var type)) return;

            if (type.ValueEquals("tool_use"u8))
            {
                var toolIndex = _toolCount++;
                _toolIndexByBlock.Set(blockIndex, toolIndex);
                var w = BeginChunk(output);
                w.WriteStartArray("tool_calls"u8);
                w.WriteStartObject();
                w.WriteNumber("index"u8, toolIndex);
                if (block.TryGetProperty("id"u8, out var id)) { w.WritePropertyName("id"u8); id.WriteTo(w); }
                w.WriteString("type"u8, "function"u8);
                w.WriteStartObject("function"u8);
                if (block.TryGetProperty("name"u8, out var name)) { w.WritePropertyName("name"u8); name.WriteTo(w); }
                w.WriteString("arguments"u8, ""u8);
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndArray();
                EndChunk(output, null);
            }
            else if (type.ValueEquals("text"u8) && block.TryGetProperty("text"u8, out var text)
                     && text.ValueKind == JsonValueKind.String && !text.ValueEquals(""u8))
            {
                var w = BeginChunk(output);
                w.WritePropertyName("content"u8);
                text.WriteTo(w);
                EndChunk(output, null);
            }
        }
    }

    /// <summary>The hot path: read index, delta type and the raw text/partial_json token without building a document.</summary>
    private void OnBlockDelta(ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        int blockIndex = -1, valueStart = -1, valueLength = 0;
        var deltaKind = 0; // 1 text_delta, 2 input_json_delta
        try
        {
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("index"u8)) JsonTokens.Int32(ref reader, ref blockIndex);
                else if (reader.ValueTextEquals("delta"u8))
                {
                    if (!JsonTokens.Value(ref reader, JsonTokenType.StartObject)) continue;
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("type"u8))
                        {
                            if (JsonTokens.Value(ref reader, JsonTokenType.String))
                                deltaKind = reader.ValueTextEquals("text_delta"u8) ? 1 : reader.ValueTextEquals("input_json_delta"u8) ? 2 : 0;
                        }
                        else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("partial_json"u8))
                        {
                            // The token with its quotes, copied into the chunk as is.
                            if (JsonTokens.StringToken(ref reader, out var start, out var length)) (valueStart, valueLength) = (start, length);
                        }
                        else reader.Skip();
                    }
                }
                else reader.Skip();
            }
        }
        catch (JsonException)
        {
            return;
        }
        if (valueStart < 0 || valueLength <= 2) return; // nothing to say (Anthropic opens tool input with "")
        var raw = data.Slice(valueStart, valueLength);

        if (deltaKind == 1)
        {
            var w = BeginChunk(output);
            w.WritePropertyName("content"u8);
            w.WriteRawValue(raw, skipInputValidation: true);
            EndChunk(output, null);
        }
        else if (deltaKind == 2 && _toolIndexByBlock[blockIndex] >= 0)
        {
            var w = BeginChunk(output);
            w.WriteStartArray("tool_calls"u8);
            w.WriteStartObject();
            w.WriteNumber("index"u8, _toolIndexByBlock[blockIndex]);
            w.WriteStartObject("function"u8);
            w.WritePropertyName("arguments"u8);
            w.WriteRawValue(raw, skipInputValidation: true);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteEndArray();
            EndChunk(output, null);
        }
    }

    private void OnMessageDelta(ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (TryParse(data, out var doc))
        {
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("delta"u8, out var delta) && delta.ValueKind == JsonValueKind.Object
                    && delta.TryGetProperty("stop_reason"u8, out var stop) && stop.ValueKind == JsonValueKind.String)
                    _finishReason = WireMapping.FinishReason(stop.GetString());
                AnthropicSse.ApplyUsage(ref _usage, AnthropicEventKind.MessageDelta, root);
            }
        }
        if (_finishReason is not null && !_finishSent) WriteFinish(output);
    }

    private void WriteFinish(IBufferWriter<byte> output)
    {
        BeginChunk(output);
        EndChunk(output, _finishReason ?? "stop");
        _finishSent = true;
    }

    private void WriteUsageChunk(IBufferWriter<byte> output)
    {
        var w = BeginEnvelope(output);
        w.WriteStartArray("choices"u8);
        w.WriteEndArray();
        w.WritePropertyName("usage"u8);
        WireMapping.WriteOpenAIUsage(w, Usage);
        w.WriteEndObject();
        FlushEvent(output);
    }

    /// <summary>An upstream error mid-stream, told the way OpenAI tells it: a <c>data: {"error":{…}}</c> event.</summary>
    private void WriteError(ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        Failed = true;
        string? type = null, message = null;
        if (TryParse(data, out var doc))
        {
            using (doc)
            {
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error"u8, out var error) && error.ValueKind == JsonValueKind.Object)
                {
                    if (error.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String) type = t.GetString();
                    if (error.TryGetProperty("message"u8, out var m) && m.ValueKind == JsonValueKind.String) message = m.GetString();
                }
            }
        }
        SseWriter.Append(output, "data: "u8);
        var w = Writer(output);
        w.WriteStartObject();
        w.WriteStartObject("error"u8);
        w.WriteString("message"u8, message ?? "The provider reported an error.");
        w.WriteString("type"u8, type ?? "api_error");
        w.WriteNull("param"u8);
        w.WriteNull("code"u8);
        w.WriteEndObject();
        w.WriteEndObject();
        FlushEvent(output);
    }

    // ---- chunk writing: "data: " + JSON written straight into the output + blank line --------------------------

    private Utf8JsonWriter Writer(IBufferWriter<byte> output)
    {
        if (_writer is null) _writer = new Utf8JsonWriter(output, CanonicalJson.WriterOptions);
        else _writer.Reset(output);
        return _writer;
    }

    private Utf8JsonWriter BeginEnvelope(IBufferWriter<byte> output)
    {
        SseWriter.Append(output, "data: "u8);
        var w = Writer(output);
        w.WriteStartObject();
        w.WriteString("id"u8, _id);
        w.WriteString("object"u8, "chat.completion.chunk"u8);
        w.WriteNumber("created"u8, _created);
        w.WriteString("model"u8, _model);
        return w;
    }

    /// <summary>Opens a one-choice chunk; the caller writes the delta's properties, then calls <see cref="EndChunk"/>.</summary>
    private Utf8JsonWriter BeginChunk(IBufferWriter<byte> output)
    {
        var w = BeginEnvelope(output);
        w.WriteStartArray("choices"u8);
        w.WriteStartObject();
        w.WriteNumber("index"u8, 0);
        w.WriteStartObject("delta"u8);
        return w;
    }

    private void EndChunk(IBufferWriter<byte> output, string? finishReason)
    {
        var w = _writer!;
        w.WriteEndObject(); // delta
        w.WriteNull("logprobs"u8);
        if (finishReason is null) w.WriteNull("finish_reason"u8);
        else w.WriteString("finish_reason"u8, finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        // OpenAI marks every chunk "usage":null once the client asked for the usage chunk.
        if (_clientWantsUsage) w.WriteNull("usage"u8);
        w.WriteEndObject();
        FlushEvent(output);
    }

    private void FlushEvent(IBufferWriter<byte> output)
    {
        _writer!.Flush();
        SseWriter.Append(output, "\n\n"u8);
    }

    private static bool TryParse(ReadOnlySpan<byte> data, out JsonDocument doc)
    {
        try
        {
            var reader = new Utf8JsonReader(data);
            doc = JsonDocument.ParseValue(ref reader);
            return true;
        }
        catch (JsonException)
        {
            doc = null!;
            return false;
        }
    }
}
