using System.Buffers;
using System.Text;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Providers.Streaming;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Tests.Vendors;

/// <summary>Golden tests: provider SSE events fed one at a time, and the exact client SSE bytes that come out.</summary>
public sealed class StreamTranslatorTests
{
    private const long Created = 1_700_000_000;

    private static string Feed(IStreamTranslator translator, params (string Event, string Data)[] events)
    {
        var output = new ArrayBufferWriter<byte>();
        foreach (var (name, data) in events) translator.OnEvent(Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(data), output);
        if (translator.Finished) translator.Complete(output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    private static string Sse(params (string Event, string Data)[] events)
    {
        var sb = new StringBuilder();
        foreach (var (name, data) in events)
        {
            if (name.Length > 0) sb.Append("event: ").Append(name).Append('\n');
            sb.Append("data: ").Append(data).Append("\n\n");
        }
        return sb.ToString();
    }

    // ---- Anthropic upstream --------------------------------------------------------------------------------------

    private static readonly (string, string)[] AnthropicTextAndToolStream =
    [
        ("message_start", """{"type":"message_start","message":{"id":"msg_01X","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0},"output_tokens":1}}}"""),
        ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""),
        ("ping", """{"type": "ping"}"""),
        ("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \"w\u00f6rld\"\n"}}"""),
        ("content_block_stop", """{"type":"content_block_stop","index":0}"""),
        ("content_block_start", """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}"""),
        ("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"""),
        ("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"""),
        ("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"""),
        ("content_block_stop", """{"type":"content_block_stop","index":1}"""),
        ("message_delta", """{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"""),
        ("message_stop", """{"type":"message_stop"}"""),
    ];

    private static string Chunk(string delta, string finish = "null", bool usageNull = true) =>
        "data: {\"id\":\"chatcmpl-01X\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude-sonnet-4-5\","
        + "\"choices\":[{\"index\":0,\"delta\":" + delta + ",\"logprobs\":null,\"finish_reason\":" + finish + "}]"
        + (usageNull ? ",\"usage\":null" : "") + "}\n\n";

    [Fact]
    public void AnthropicStream_ToOpenAIClientAskingForUsage_EmitsRoleContentToolCallsFinishUsageAndDone()
    {
        var translator = new AnthropicToOpenAIStream(clientWantsUsage: true, "claude-sonnet-4-5", new FixedTime(Created));

        var output = Feed(translator, AnthropicTextAndToolStream);

        Assert.Equal(
            Chunk("""{"role":"assistant","content":""}""")
            + Chunk("""{"content":"Hello \"w\u00f6rld\"\n"}""")
            + Chunk("""{"tool_calls":[{"index":0,"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":""}}]}""")
            + Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}""")
            + Chunk("""{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}""")
            + Chunk("{}", "\"tool_calls\"")
            + """data: {"id":"chatcmpl-01X","object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet-4-5","choices":[],"usage":{"prompt_tokens":1110,"completion_tokens":42,"total_tokens":1152,"prompt_tokens_details":{"cached_tokens":1000}}}"""
            + "\n\ndata: [DONE]\n\n",
            output);
        Assert.True(translator.Finished);
        // 10 uncached + 1000 read + 100 written (5 m); output is message_delta's cumulative 42, not message_start's 1.
        Assert.Equal(new Usage(1110, 1000, 100, 0, 42), translator.Usage);
    }

    [Fact]
    public void AnthropicStream_ToOpenAIClientNotAskingForUsage_HidesTheUsageChunkButStillMetersIt()
    {
        var translator = new AnthropicToOpenAIStream(clientWantsUsage: false, "claude-sonnet-4-5", new FixedTime(Created));

        var output = Feed(translator, AnthropicTextAndToolStream);

        Assert.EndsWith(Chunk("{}", "\"tool_calls\"", usageNull: false) + "data: [DONE]\n\n", output);
        Assert.DoesNotContain("\"usage\"", output);
        Assert.Equal(new Usage(1110, 1000, 100, 0, 42), translator.Usage);
    }

    [Fact]
    public void AnthropicErrorEvent_ReachesAnOpenAIClientAsAnErrorData()
    {
        var translator = new AnthropicToOpenAIStream(clientWantsUsage: false, "c", new FixedTime(Created));

        var output = Feed(translator,
            ("message_start", """{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":5,"output_tokens":0}}}"""),
            ("error", """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"""));

        Assert.EndsWith("""data: {"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":null}}""" + "\n\n", output);
        Assert.False(translator.Finished);
        Assert.Equal(new Usage(5, 0, 0, 0, 0), translator.Usage);
    }

    [Fact]
    public void AnthropicStream_ToAnthropicClient_IsReemittedByteForByte_AndUsageTakesTheLatestNonZeroValues()
    {
        (string, string)[] events =
        [
            ("message_start", """{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"c","usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"""),
            ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""),
            ("ping", """{"type": "ping"}"""),
            ("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":0}"""),
            ("message_delta", """{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":4096,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":2048},"output_tokens":7}}"""),
            ("message_stop", """{"type":"message_stop"}"""),
        ];
        var translator = new AnthropicStreamPassthrough();

        var output = Feed(translator, events);

        Assert.Equal(Sse(events), output);
        Assert.True(translator.Finished);
        Assert.Equal(new Usage(12 + 4096 + 2048, 4096, 0, 2048, 7), translator.Usage);
    }

    [Fact]
    public void AnthropicPassthrough_NamesAnEventTheUpstreamLeftUnnamed()
    {
        var translator = new AnthropicStreamPassthrough();

        var output = Feed(translator, ("", """{"type":"message_stop"}"""));

        Assert.Equal("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", output);
        Assert.True(translator.Finished);
    }

    [Fact]
    public void AnthropicStream_SplitIntoArbitraryNetworkReads_TranslatesTheSameThroughTheSseParser()
    {
        var raw = Encoding.UTF8.GetBytes(Sse(AnthropicTextAndToolStream).Replace("\n", "\r\n"));
        var translator = new AnthropicToOpenAIStream(clientWantsUsage: true, "claude-sonnet-4-5", new FixedTime(Created));
        var output = new ArrayBufferWriter<byte>();
        using var parser = new SseParser();

        for (var i = 0; i < raw.Length; i += 7) parser.Feed(raw.AsSpan(i, Math.Min(7, raw.Length - i)), translator, output);
        parser.Flush(translator, output);

        var expected = Feed(new AnthropicToOpenAIStream(clientWantsUsage: true, "claude-sonnet-4-5", new FixedTime(Created)), AnthropicTextAndToolStream);
        Assert.Equal(expected, Encoding.UTF8.GetString(output.WrittenSpan));
        Assert.True(translator.Finished);
    }

    // ---- OpenAI upstream -----------------------------------------------------------------------------------------

    private static (string, string) OpenAIData(string choicesAndUsage) =>
        ("", """{"id":"chatcmpl-9X","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","""
             + choicesAndUsage + "}");

    private static string Event(string name, string data) => $"event: {name}\ndata: {data}\n\n";

    [Fact]
    public void OpenAIStream_ToAnthropicClient_EmitsBlocksPerTextRunAndToolCall_AndRealUsageInMessageDelta()
    {
        var translator = new OpenAIToAnthropicStream("my-claude");

        var output = Feed(translator,
            OpenAIData("""
                "choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{"content":"Hi "},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{"content":"th\u00e9re\n"},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null
                """),
            OpenAIData("""
                "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null
                """),
            OpenAIData("""
                "choices":[],"usage":{"prompt_tokens":1500,"completion_tokens":20,"total_tokens":1520,"prompt_tokens_details":{"cached_tokens":1280,"audio_tokens":0}}
                """),
            ("", "[DONE]"));

        Assert.Equal(
            Event("message_start", """{"type":"message_start","message":{"id":"msg_9X","type":"message","role":"assistant","model":"my-claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}""")
            + Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""")
            + Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}""")
            + Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"th\u00e9re\n"}}""")
            + Event("content_block_stop", """{"type":"content_block_stop","index":0}""")
            + Event("content_block_start", """{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_a","name":"get_weather","input":{}}}""")
            + Event("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}""")
            + Event("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}""")
            + Event("content_block_stop", """{"type":"content_block_stop","index":1}""")
            + Event("content_block_start", """{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_b","name":"get_time","input":{}}}""")
            + Event("content_block_delta", """{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}""")
            + Event("content_block_stop", """{"type":"content_block_stop","index":2}""")
            + Event("message_delta", """{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":220,"cache_creation_input_tokens":0,"cache_read_input_tokens":1280,"output_tokens":20}}""")
            + Event("message_stop", """{"type":"message_stop"}"""),
            output);
        Assert.True(translator.Finished);
        Assert.Equal(new Usage(1500, 1280, 0, 0, 20), translator.Usage);
    }

    [Fact]
    public void OpenAIStream_WithUsageOnTheFinishChunkAndNoContent_StillOpensAndClosesTheMessage()
    {
        var translator = new OpenAIToAnthropicStream("m");

        var output = Feed(translator,
            OpenAIData("""
                "choices":[{"index":0,"delta":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":9}
                """),
            ("", "[DONE]"));

        Assert.Equal(
            Event("message_start", """{"type":"message_start","message":{"id":"msg_9X","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}""")
            + Event("message_delta", """{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}""")
            + Event("message_stop", """{"type":"message_stop"}"""),
            output);
        Assert.Equal(new Usage(9, 0, 0, 0, 0), translator.Usage);
    }

    [Fact]
    public void OpenAIErrorChunk_ReachesAnAnthropicClientAsAnErrorEvent()
    {
        var translator = new OpenAIToAnthropicStream("m");

        var output = Feed(translator, ("", """{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"""));

        Assert.Equal(Event("error", """{"type":"error","error":{"type":"api_error","message":"boom"}}"""), output);
        Assert.False(translator.Finished);
    }

    // ---- factory -------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(ApiFormat.OpenAI, ApiFormat.OpenAI, typeof(OpenAIStreamPassthrough))]
    [InlineData(ApiFormat.Anthropic, ApiFormat.Anthropic, typeof(AnthropicStreamPassthrough))]
    [InlineData(ApiFormat.Anthropic, ApiFormat.OpenAI, typeof(AnthropicToOpenAIStream))]
    [InlineData(ApiFormat.OpenAI, ApiFormat.Anthropic, typeof(OpenAIToAnthropicStream))]
    public void Factory_PicksTheTranslatorForProviderAndClientFormats(ApiFormat provider, ApiFormat client, Type expected) =>
        Assert.IsType(expected, StreamTranslators.Create(provider, client, clientWantsUsage: true, "m"));
}
