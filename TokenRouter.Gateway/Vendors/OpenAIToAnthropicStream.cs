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
/// OpenAI-format provider → Anthropic client. Emits <c>message_start</c> (input tokens are unknown until OpenAI's
/// final usage chunk, so it reports zeros), one content block per text run and per tool call, and at <c>[DONE]</c>
/// <c>message_delta</c> with the stop reason and the real usage, then <c>message_stop</c>. Only the first choice is
/// translated (Anthropic has no <c>n</c>). Text and argument pieces are copied as raw JSON string tokens.
/// </summary>
public sealed class OpenAIToAnthropicStream(string clientModel) : IStreamTranslator
{
    private readonly List<ToolDelta> _toolDeltas = [];
    private Utf8JsonWriter? _writer;
    private Usage _usage;
    private bool _started;
    private int _openBlock = -1;
    private bool _openIsText;
    private int _nextBlock;
    private string? _stopReason;

    // OpenAI tool_calls index → Anthropic content-block index (-1: not seen yet).
    private readonly IndexMap _blockByTool = new();

    public Usage Usage => _usage;
    public bool Finished { get; private set; }
    public bool Failed { get; private set; }

    private struct ToolDelta
    {
        public int Index;
        public string? Id;
        public string? Name;
        public int ArgsStart;
        public int ArgsLength;
    }

    private struct Chunk
    {
        public string? Id;
        public int ContentStart;
        public int ContentLength;
        public string? StopReason;
        public int UsageStart;
        public int UsageLength;
        public int ErrorStart;
        public int ErrorLength;
    }

    public void OnEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (Finished || Failed) return;
        if (data.SequenceEqual("[DONE]"u8))
        {
            Close(output);
            return;
        }
        if (!TryRead(data, out var chunk))
        {
            // Garbage from the provider must not end as an empty message that looks like success.
            WriteError(SseEvents.NotJsonErrorObject, output);
            return;
        }

        if (chunk.ErrorLength > 0)
        {
            WriteError(data.Slice(chunk.ErrorStart, chunk.ErrorLength), output);
            return;
        }
        if (!_started) WriteMessageStart(chunk.Id, output);

        if (chunk.ContentLength > 2)
        {
            if (_openBlock < 0 || !_openIsText)
            {
                CloseBlock(output);
                _openBlock = _nextBlock++;
                _openIsText = true;
                var w = BeginEvent(output, "content_block_start"u8);
                w.WriteNumber("index"u8, _openBlock);
                w.WriteStartObject("content_block"u8);
                w.WriteString("type"u8, "text"u8);
                w.WriteString("text"u8, ""u8);
                w.WriteEndObject();
                EndEvent(output);
            }
            WriteDelta(output, _openBlock, "text_delta"u8, "text"u8, data.Slice(chunk.ContentStart, chunk.ContentLength));
        }

        foreach (var tool in _toolDeltas)
        {
            if (tool.Index < 0) continue;
            var block = _blockByTool[tool.Index];
            if (block < 0)
            {
                CloseBlock(output);
                block = _openBlock = _nextBlock++;
                _openIsText = false;
                _blockByTool.Set(tool.Index, block);
                var w = BeginEvent(output, "content_block_start"u8);
                w.WriteNumber("index"u8, block);
                w.WriteStartObject("content_block"u8);
                w.WriteString("type"u8, "tool_use"u8);
                // Some OpenAI-compatible servers omit the id; a stable made-up one keeps the client's pairing working.
                AnthropicAdapter.WriteToolId(w, "id"u8, tool.Id ?? "toolu_tokenrouter_" + tool.Index);
                w.WriteString("name"u8, tool.Name ?? "");
                w.WriteStartObject("input"u8);
                w.WriteEndObject();
                w.WriteEndObject();
                EndEvent(output);
            }
            // A piece for an earlier, already closed call still names its own block: clients accumulate by index.
            if (tool.ArgsLength > 2)
                WriteDelta(output, block, "input_json_delta"u8, "partial_json"u8, data.Slice(tool.ArgsStart, tool.ArgsLength));
        }

        if (chunk.StopReason is not null)
        {
            _stopReason = chunk.StopReason;
            CloseBlock(output);
        }
        if (chunk.UsageLength > 0) ReadUsage(data.Slice(chunk.UsageStart, chunk.UsageLength));
    }

    public void Complete(IBufferWriter<byte> output)
    {
    }

    private void Close(IBufferWriter<byte> output)
    {
        if (!_started) WriteMessageStart(null, output);
        CloseBlock(output);

        var w = BeginEvent(output, "message_delta"u8);
        w.WriteStartObject("delta"u8);
        w.WriteString("stop_reason"u8, _stopReason ?? "end_turn");
        w.WriteNull("stop_sequence"u8);
        w.WriteEndObject();
        w.WritePropertyName("usage"u8);
        WireMapping.WriteAnthropicUsage(w, _usage, cacheCreationBreakdown: false);
        EndEvent(output);

        BeginEvent(output, "message_stop"u8);
        EndEvent(output);
        Finished = true;
    }

    private void WriteMessageStart(string? upstreamId, IBufferWriter<byte> output)
    {
        _started = true;
        var w = BeginEvent(output, "message_start"u8);
        w.WriteStartObject("message"u8);
        w.WriteString("id"u8, WireMapping.AnthropicId(upstreamId));
        w.WriteString("type"u8, "message"u8);
        w.WriteString("role"u8, "assistant"u8);
        w.WriteString("model"u8, clientModel);
        w.WriteStartArray("content"u8);
        w.WriteEndArray();
        w.WriteNull("stop_reason"u8);
        w.WriteNull("stop_sequence"u8);
        w.WritePropertyName("usage"u8);
        WireMapping.WriteAnthropicUsage(w, default, cacheCreationBreakdown: false);
        w.WriteEndObject();
        EndEvent(output);
    }

    private void CloseBlock(IBufferWriter<byte> output)
    {
        if (_openBlock < 0) return;
        var w = BeginEvent(output, "content_block_stop"u8);
        w.WriteNumber("index"u8, _openBlock);
        EndEvent(output);
        _openBlock = -1;
    }

    private void WriteDelta(IBufferWriter<byte> output, int block, ReadOnlySpan<byte> deltaType, ReadOnlySpan<byte> field, ReadOnlySpan<byte> rawString)
    {
        var w = BeginEvent(output, "content_block_delta"u8);
        w.WriteNumber("index"u8, block);
        w.WriteStartObject("delta"u8);
        w.WriteString("type"u8, deltaType);
        w.WritePropertyName(field);
        w.WriteRawValue(rawString, skipInputValidation: true);
        w.WriteEndObject();
        EndEvent(output);
    }

    /// <summary>An upstream error mid-stream, in Anthropic's shape: <c>event: error</c>.</summary>
    private void WriteError(ReadOnlySpan<byte> errorObject, IBufferWriter<byte> output)
    {
        Failed = true;
        string? type = null, code = null, message = null;
        try
        {
            var reader = new Utf8JsonReader(errorObject);
            using var doc = JsonDocument.ParseValue(ref reader);
            var e = doc.RootElement;
            if (e.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String) type = t.GetString();
            if (e.TryGetProperty("code"u8, out var c) && c.ValueKind == JsonValueKind.String) code = c.GetString();
            if (e.TryGetProperty("message"u8, out var m) && m.ValueKind == JsonValueKind.String) message = m.GetString();
        }
        catch (JsonException)
        {
        }
        var w = BeginEvent(output, "error"u8);
        w.WriteStartObject("error"u8);
        w.WriteString("type"u8, WireMapping.AnthropicErrorType(type, code));
        w.WriteString("message"u8, message ?? "The provider reported an error.");
        w.WriteEndObject();
        EndEvent(output);
    }

    private void ReadUsage(ReadOnlySpan<byte> usageObject)
    {
        try
        {
            var reader = new Utf8JsonReader(usageObject);
            using var doc = JsonDocument.ParseValue(ref reader);
            _usage = OpenAIUsageReader.Instance.ReadUsage(doc.RootElement);
        }
        catch (JsonException)
        {
        }
    }

    // ---- reading one chunk without a document -------------------------------------------------------------------

    private bool TryRead(ReadOnlySpan<byte> data, out Chunk chunk)
    {
        chunk = default;
        _toolDeltas.Clear();
        try
        {
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    var id = JsonTokens.String(ref reader);
                    if (!_started) chunk.Id = id;
                }
                else if (reader.ValueTextEquals("choices"u8))
                {
                    if (JsonTokens.Value(ref reader, JsonTokenType.StartArray)) ReadChoices(ref reader, ref chunk);
                }
                else if (reader.ValueTextEquals("usage"u8) || reader.ValueTextEquals("error"u8))
                {
                    var isUsage = reader.ValueTextEquals("usage"u8);
                    if (!JsonTokens.Value(ref reader, JsonTokenType.StartObject)) continue; // "usage":null rides on every chunk
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    var length = (int)reader.BytesConsumed - start;
                    if (isUsage) (chunk.UsageStart, chunk.UsageLength) = (start, length);
                    else (chunk.ErrorStart, chunk.ErrorLength) = (start, length);
                }
                else reader.Skip();
            }
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            _toolDeltas.Clear();
            return false;
        }
    }

    private void ReadChoices(ref Utf8JsonReader reader, ref Chunk chunk)
    {
        var first = true;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (!first || reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }
            first = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("delta"u8))
                {
                    if (JsonTokens.Value(ref reader, JsonTokenType.StartObject)) ReadDelta(ref reader, ref chunk);
                }
                else if (reader.ValueTextEquals("finish_reason"u8))
                {
                    if (JsonTokens.Value(ref reader, JsonTokenType.String)) chunk.StopReason = WireMapping.StopReason(reader.ValueSpan);
                }
                else reader.Skip();
            }
        }
    }

    private void ReadDelta(ref Utf8JsonReader reader, ref Chunk chunk)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            // A refusal streams like text; the Anthropic client sees the model's words either way.
            if (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("refusal"u8))
            {
                // The first non-empty one counts ("content":"" with a refusal, say).
                if (JsonTokens.StringToken(ref reader, out var start, out var length) && length > 2 && chunk.ContentLength == 0)
                    (chunk.ContentStart, chunk.ContentLength) = (start, length);
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                if (!JsonTokens.Value(ref reader, JsonTokenType.StartArray)) continue;
                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject) _toolDeltas.Add(ReadToolDelta(ref reader));
            }
            else reader.Skip();
        }
    }

    private static ToolDelta ReadToolDelta(ref Utf8JsonReader reader)
    {
        var delta = new ToolDelta { Index = -1 };
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8)) JsonTokens.Int32(ref reader, ref delta.Index);
            else if (reader.ValueTextEquals("id"u8)) delta.Id = JsonTokens.String(ref reader);
            else if (reader.ValueTextEquals("function"u8))
            {
                if (!JsonTokens.Value(ref reader, JsonTokenType.StartObject)) continue;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("name"u8)) delta.Name = JsonTokens.String(ref reader);
                    else if (reader.ValueTextEquals("arguments"u8)) JsonTokens.StringToken(ref reader, out delta.ArgsStart, out delta.ArgsLength);
                    else reader.Skip();
                }
            }
            else reader.Skip();
        }
        return delta;
    }

    // ---- event writing: "event: X\ndata: " + JSON written straight into the output + blank line ----------------

    private Utf8JsonWriter BeginEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> type)
    {
        SseWriter.Append(output, "event: "u8);
        SseWriter.Append(output, type);
        SseWriter.Append(output, "\ndata: "u8);
        if (_writer is null) _writer = new Utf8JsonWriter(output, CanonicalJson.WriterOptions);
        else _writer.Reset(output);
        _writer.WriteStartObject();
        _writer.WriteString("type"u8, type);
        return _writer;
    }

    private void EndEvent(IBufferWriter<byte> output)
    {
        _writer!.WriteEndObject();
        _writer.Flush();
        SseWriter.Append(output, "\n\n"u8);
    }
}
