using System.Buffers;
using System.Text;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Gateway.Vendors.UsageReaders;
using static TokenRouter.Tests.Vendors.ProviderTestJson;

namespace TokenRouter.Tests.Vendors;

/// <summary>Golden tests: non-streaming responses translated into the client's format, usage included.</summary>
public sealed class ResponseTranslatorTests
{
    private const long Created = 1_700_000_000;

    private static string Translate(ApiFormat from, ApiFormat to, string providerJson, Usage usage, string clientModel)
    {
        using var doc = JsonDocument.Parse(providerJson);
        var buffer = new ArrayBufferWriter<byte>();
        ResponseTranslator.TranslateJson(from, to, doc.RootElement, usage, clientModel, buffer, Created);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static Usage AnthropicUsage(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return AnthropicUsageReader.Instance.ReadResponse(doc.RootElement);
    }

    private static Usage OpenAIUsage(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return OpenAIUsageReader.Instance.ReadResponse(doc.RootElement);
    }

    [Fact]
    public void AnthropicMessage_ToOpenAICompletion_JoinsTextMapsToolUseAndReportsWholePromptTokens()
    {
        const string anthropic = """
        {"id":"msg_01ABC","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
         "content":[
          {"type":"thinking","thinking":"…","signature":"s"},
          {"type":"text","text":"Let me check "},
          {"type":"text","text":"the weather."},
          {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris","days":2}}],
         "stop_reason":"tool_use","stop_sequence":null,
         "usage":{"input_tokens":100,"cache_creation_input_tokens":300,"cache_read_input_tokens":2000,
                  "cache_creation":{"ephemeral_5m_input_tokens":200,"ephemeral_1h_input_tokens":100},"output_tokens":50}}
        """;
        var usage = AnthropicUsage(anthropic);

        // 100 uncached + 2000 read + 300 written = 2400 prompt tokens, of which 2000 cached.
        Assert.Equal(new Usage(2400, 2000, 200, 100, 50), usage);
        Assert.Equal(Compact("""
        {"id":"chatcmpl-01ABC","object":"chat.completion","created":1700000000,"model":"claude-sonnet-4-5",
         "choices":[{"index":0,
           "message":{"role":"assistant","content":"Let me check the weather.",
             "tool_calls":[{"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"days\":2}"}}],
             "refusal":null},
           "logprobs":null,"finish_reason":"tool_calls"}],
         "usage":{"prompt_tokens":2400,"completion_tokens":50,"total_tokens":2450,"prompt_tokens_details":{"cached_tokens":2000}}}
        """), Translate(ApiFormat.Anthropic, ApiFormat.OpenAI, anthropic, usage, "claude-sonnet-4-5"));
    }

    [Fact]
    public void OpenAICompletion_ToAnthropicMessage_SplitsUncachedInputAndTurnsInvalidArgumentsIntoEmptyInput()
    {
        const string openAI = """
        {"id":"chatcmpl-XYZ","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Checking.",
           "tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"not json"}}],
           "refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],
         "usage":{"prompt_tokens":2048,"completion_tokens":30,"total_tokens":2078,"prompt_tokens_details":{"cached_tokens":1920}}}
        """;
        var usage = OpenAIUsage(openAI);

        // 2048 prompt tokens of which 1920 cached: Anthropic's input_tokens is the uncached 128.
        Assert.Equal(Compact("""
        {"id":"msg_XYZ","type":"message","role":"assistant","model":"my-claude",
         "content":[
          {"type":"text","text":"Checking."},
          {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
          {"type":"tool_use","id":"call_2","name":"get_time","input":{}}],
         "stop_reason":"tool_use","stop_sequence":null,
         "usage":{"input_tokens":128,"cache_creation_input_tokens":0,"cache_read_input_tokens":1920,
                  "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":30}}
        """), Translate(ApiFormat.OpenAI, ApiFormat.Anthropic, openAI, usage, "my-claude"));
    }

    [Fact]
    public void DeepSeekCompletion_ToAnthropicMessage_CountsCacheHitsAsCacheReads()
    {
        const string deepSeek = """
        {"id":"abc","object":"chat.completion","created":1,"model":"deepseek-chat",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
         "usage":{"prompt_tokens":1000,"completion_tokens":5,"total_tokens":1005,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":360}}
        """;
        var usage = OpenAIUsage(deepSeek);

        Assert.Equal(Compact("""
        {"id":"msg_abc","type":"message","role":"assistant","model":"m",
         "content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,
         "usage":{"input_tokens":360,"cache_creation_input_tokens":0,"cache_read_input_tokens":640,
                  "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":5}}
        """), Translate(ApiFormat.OpenAI, ApiFormat.Anthropic, deepSeek, usage, "m"));
    }

    [Fact]
    public void AnthropicTextOnlyMessage_ToOpenAI_HasNoToolCallsAndStopFinish()
    {
        const string anthropic = """
        {"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"Done"}],
         "stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":7,"output_tokens":2}}
        """;

        Assert.Equal(Compact("""
        {"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Done","refusal":null},"logprobs":null,"finish_reason":"stop"}],
         "usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9,"prompt_tokens_details":{"cached_tokens":0}}}
        """), Translate(ApiFormat.Anthropic, ApiFormat.OpenAI, anthropic, AnthropicUsage(anthropic), "gpt-4o"));
    }

    [Theory]
    [InlineData("end_turn", "stop")]
    [InlineData("stop_sequence", "stop")]
    [InlineData("max_tokens", "length")]
    [InlineData("tool_use", "tool_calls")]
    [InlineData("refusal", "content_filter")]
    public void AnthropicStopReason_MapsToOpenAIFinishReason(string stopReason, string finishReason)
    {
        var json = """{"id":"msg_1","content":[],"usage":{"input_tokens":1,"output_tokens":1},"stop_reason":""" + "\"" + stopReason + "\"}";

        using var doc = JsonDocument.Parse(Translate(ApiFormat.Anthropic, ApiFormat.OpenAI, json, default, "m"));

        Assert.Equal(finishReason, doc.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData("stop", "end_turn")]
    [InlineData("length", "max_tokens")]
    [InlineData("tool_calls", "tool_use")]
    [InlineData("content_filter", "refusal")]
    public void OpenAIFinishReason_MapsToAnthropicStopReason(string finishReason, string stopReason)
    {
        var json = """{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":""" + "\"" + finishReason + "\"}]}";

        using var doc = JsonDocument.Parse(Translate(ApiFormat.OpenAI, ApiFormat.Anthropic, json, default, "m"));

        Assert.Equal(stopReason, doc.RootElement.GetProperty("stop_reason").GetString());
    }

    [Fact]
    public void SameFormat_IsWrittenUnchanged()
    {
        const string json = """{"id":"msg_1","type":"message","content":[]}""";

        Assert.Equal(json, Translate(ApiFormat.Anthropic, ApiFormat.Anthropic, json, default, "m"));
    }
}
