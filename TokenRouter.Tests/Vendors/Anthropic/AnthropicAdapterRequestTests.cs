using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.Anthropic;
using static TokenRouter.Tests.Vendors.ProviderTestJson;

namespace TokenRouter.Tests.Vendors.Anthropic;

/// <summary>Golden tests: an OpenAI client's request, as the gateway sends it to Anthropic.</summary>
public sealed class AnthropicAdapterRequestTests
{
    private const string Model = "claude-sonnet-4-5";
    private readonly AnthropicAdapter _adapter = new();

    [Fact]
    public void OpenAIAgentTurn_TranslatesSystemToolsToolCallsToolResultsImagesAndSampling()
    {
        using var envelope = ParseOpenAI("""
        {"model":"gpt-4o","max_tokens":256,"temperature":0.5,"top_p":0.9,"stop":["END"],"user":"u1","seed":3,
         "messages":[
          {"role":"system","content":"You are terse."},
          {"role":"developer","content":[{"type":"text","text":"Use tools."}]},
          {"role":"user","content":[
            {"type":"text","text":"Weather in Paris and Rome?"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
            {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]},
          {"role":"assistant","content":"","tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"unit\": \"C\", \"city\": \"Rome\"}"}}]},
          {"role":"tool","tool_call_id":"call_1","content":"18C"},
          {"role":"tool","tool_call_id":"call_2","content":"24C"},
          {"role":"system","content":"Answer in French."},
          {"role":"user","content":"Thanks"}],
         "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now",
           "parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string"}}}}}],
         "tool_choice":"required","parallel_tool_calls":false}
        """);
        new Canonicalizer().Canonicalize(envelope); // as the pipeline does before the adapter

        var json = Write(_adapter, envelope, Model);

        Assert.Equal(Compact("""
        {"model":"claude-sonnet-4-5","max_tokens":256,
         "system":[{"type":"text","text":"You are terse."},{"type":"text","text":"Use tools."}],
         "tools":[{"name":"get_weather","description":"Weather now",
           "input_schema":{"properties":{"city":{"type":"string"}},"required":["city"],"type":"object"}}],
         "tool_choice":{"type":"any","disable_parallel_tool_use":true},
         "messages":[
          {"role":"user","content":[
            {"type":"text","text":"Weather in Paris and Rome?"},
            {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
            {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]},
          {"role":"assistant","content":[
            {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
            {"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome","unit":"C"}}]},
          {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"call_1","content":"18C"},
            {"type":"tool_result","tool_use_id":"call_2","content":"24C"},
            {"type":"text","text":"Answer in French."},
            {"type":"text","text":"Thanks"}]}],
         "temperature":0.5,"top_p":0.9,"stop_sequences":["END"],
         "metadata":{"user_id":"u1"}}
        """), json);
    }

    [Fact]
    public void SingleSystemString_IsSentAsString_AndMissingMaxTokensUsesTheDefault()
    {
        using var envelope = ParseOpenAI("""{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"Hi"}]}""");

        Assert.Equal(
            """{"model":"claude-x","max_tokens":4096,"system":"Be kind.","messages":[{"role":"user","content":"Hi"}],"stream":true}""",
            Write(_adapter, envelope, "claude-x"));
        Assert.Equal(4096, AnthropicAdapter.DefaultMaxTokens);
    }

    [Fact]
    public void ConfiguredDefaultMaxTokens_IsUsedWhenTheClientSentNone()
    {
        using var envelope = ParseOpenAI("""{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(
            """{"model":"claude-x","max_tokens":1000,"messages":[{"role":"user","content":"Hi"}]}""",
            Write(new AnthropicAdapter(1000), envelope, "claude-x"));
    }

    [Fact]
    public void NonPositiveDefaultMaxTokens_IsRejectedAtConstruction() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new AnthropicAdapter(0));

    [Theory]
    [InlineData("\"auto\"", null, """{"type":"auto"}""")]
    [InlineData("\"none\"", null, """{"type":"none"}""")]
    [InlineData("\"none\"", "false", """{"type":"none"}""")]
    [InlineData("\"required\"", "true", """{"type":"any"}""")]
    [InlineData("""{"type":"function","function":{"name":"f"}}""", "false", """{"type":"tool","name":"f","disable_parallel_tool_use":true}""")]
    [InlineData(null, "false", """{"type":"auto","disable_parallel_tool_use":true}""")]
    public void ToolChoice_MapsToAnthropicTypes_WithParallelCallsDisabledWhenAsked(string? toolChoice, string? parallel, string expected)
    {
        var extra = (toolChoice is null ? "" : $",\"tool_choice\":{toolChoice}") + (parallel is null ? "" : $",\"parallel_tool_calls\":{parallel}");
        using var envelope = ParseOpenAI("""
            {"model":"m","messages":[{"role":"user","content":"Hi"}],
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]
            """ + extra + "}");

        using var doc = Parse(Write(_adapter, envelope, "c"));

        Assert.Equal(expected, doc.RootElement.GetProperty("tool_choice").GetRawText());
    }

    [Fact]
    public void ToolChoice_IsOmittedForAnOpenAIClientWithoutTools()
    {
        using var envelope = ParseOpenAI("""{"model":"m","messages":[{"role":"user","content":"Hi"}],"tool_choice":"none"}""");

        using var doc = Parse(Write(_adapter, envelope, "c"));

        Assert.False(doc.RootElement.TryGetProperty("tool_choice", out _));
        Assert.False(doc.RootElement.TryGetProperty("tools", out _));
    }

    [Fact]
    public void FunctionWithoutParameters_GetsAnEmptyObjectSchema_AndOpenAIServerToolsAreNotSent()
    {
        using var envelope = ParseOpenAI("""
            {"model":"m","messages":[{"role":"user","content":"Hi"}],
             "tools":[{"type":"function","function":{"name":"ping","strict":true}},{"type":"custom","custom":{"name":"grammar"}}]}
            """);

        using var doc = Parse(Write(_adapter, envelope, "c"));

        Assert.Equal("""[{"name":"ping","input_schema":{"properties":{},"type":"object"}}]""", doc.RootElement.GetProperty("tools").GetRawText());
    }

    [Fact]
    public void CacheBreakpoints_GoOnTheLastBlockOfEachMarkedMessage_AndOnMarkedTools()
    {
        using var envelope = ParseOpenAI("""
        {"model":"gpt-4o","max_tokens":50,
         "messages":[
          {"role":"system","content":"Rules."},
          {"role":"user","content":[{"type":"text","text":"Part one","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Part two"}]},
          {"role":"assistant","content":"Calling.","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"c1","content":"done"},
          {"role":"user","content":"Next"}],
         "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}
        """);
        envelope.Tools[0].CacheControl = CacheControl.OneHour;
        envelope.Messages[0].CacheBreakpoint = CacheControl.OneHour;   // system
        envelope.Messages[1].CacheBreakpoint = CacheControl.FiveMinutes; // last part, not the one carrying its own
        envelope.Messages[2].CacheBreakpoint = CacheControl.FiveMinutes; // after text and tool_use: on the tool_use
        envelope.Messages[3].CacheBreakpoint = CacheControl.FiveMinutes; // the tool_result block
        envelope.Messages[4].CacheBreakpoint = CacheControl.FiveMinutes; // string content becomes a block

        var json = Write(_adapter, envelope, Model);

        Assert.Equal(Compact("""
        {"model":"claude-sonnet-4-5","max_tokens":50,
         "system":[{"type":"text","text":"Rules.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
         "tools":[{"name":"f","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral","ttl":"1h"}}],
         "messages":[
          {"role":"user","content":[
            {"type":"text","text":"Part one","cache_control":{"type":"ephemeral"}},
            {"type":"text","text":"Part two","cache_control":{"type":"ephemeral"}}]},
          {"role":"assistant","content":[
            {"type":"text","text":"Calling."},
            {"type":"tool_use","id":"c1","name":"f","input":{},"cache_control":{"type":"ephemeral"}}]},
          {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"c1","content":"done","cache_control":{"type":"ephemeral"}},
            {"type":"text","text":"Next","cache_control":{"type":"ephemeral"}}]}]}
        """), json);
    }

    [Fact]
    public void ToolCallArguments_ThatAreNotAJsonObject_BecomeAnEmptyInput()
    {
        using var envelope = ParseOpenAI("""
        {"model":"m","messages":[
          {"role":"user","content":"Go"},
          {"role":"assistant","content":null,"tool_calls":[
            {"id":"a","type":"function","function":{"name":"f","arguments":""}},
            {"id":"b","type":"function","function":{"name":"f","arguments":"{\"city\": \"Par"}},
            {"id":"c","type":"function","function":{"name":"f","arguments":"[1,2]"}},
            {"id":"d","type":"function","function":{"name":"f","arguments":"{} trailing"}},
            {"id":"e","type":"function","function":{"name":"f","arguments":" {\"ok\":true} "}}]}],
         "tools":[{"type":"function","function":{"name":"f"}}]}
        """);

        using var doc = Parse(Write(_adapter, envelope, "c"));

        var blocks = doc.RootElement.GetProperty("messages")[1].GetProperty("content");
        Assert.Equal(5, blocks.GetArrayLength());
        Assert.Equal("{}", blocks[0].GetProperty("input").GetRawText());
        Assert.Equal("{}", blocks[1].GetProperty("input").GetRawText());
        Assert.Equal("{}", blocks[2].GetProperty("input").GetRawText());
        Assert.Equal("{}", blocks[3].GetProperty("input").GetRawText());
        Assert.True(blocks[4].GetProperty("input").GetProperty("ok").GetBoolean());
    }

    [Fact]
    public void ToolCallIds_OutsideAnthropicsAlphabet_AreRewrittenTheSameWayInToolUseAndToolResult()
    {
        using var envelope = ParseOpenAI("""
        {"model":"m","messages":[
          {"role":"user","content":"Go"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"functions.f:0","type":"function","function":{"name":"f","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"functions.f:0","content":"ok"}],
         "tools":[{"type":"function","function":{"name":"f"}}]}
        """);

        using var doc = Parse(Write(_adapter, envelope, "c"));

        var messages = doc.RootElement.GetProperty("messages");
        Assert.Equal("functions_f_0", messages[1].GetProperty("content")[0].GetProperty("id").GetString());
        Assert.Equal("functions_f_0", messages[2].GetProperty("content")[0].GetProperty("tool_use_id").GetString());
    }

    [Fact]
    public void EmptyAssistantText_IsDropped_AndAnEmptyAssistantMessageDoesNotBreakAlternation()
    {
        using var envelope = ParseOpenAI("""
        {"model":"m","messages":[
          {"role":"user","content":"One"},
          {"role":"assistant","content":""},
          {"role":"user","content":"Two"}]}
        """);

        Assert.Equal(
            """{"model":"c","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"One"},{"type":"text","text":"Two"}]}]}""",
            Write(_adapter, envelope, "c"));
    }

    [Fact]
    public void ToolMessageWithPartsAndRefusalPart_AreTranslatedToBlocks()
    {
        using var envelope = ParseOpenAI("""
        {"model":"m","messages":[
          {"role":"user","content":"Go"},
          {"role":"assistant","content":[{"type":"refusal","refusal":"I can't."}],"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"a","content":[{"type":"text","text":"r1"},{"type":"text","text":"r2"}]}],
         "tools":[{"type":"function","function":{"name":"f"}}]}
        """);

        using var doc = Parse(Write(_adapter, envelope, "c"));

        var messages = doc.RootElement.GetProperty("messages");
        Assert.Equal("""[{"type":"text","text":"I can't."},{"type":"tool_use","id":"a","name":"f","input":{}}]""", messages[1].GetProperty("content").GetRawText());
        Assert.Equal("""[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":"r1"},{"type":"text","text":"r2"}]}]""", messages[2].GetProperty("content").GetRawText());
    }

    [Fact]
    public void AudioPart_IsRejectedWithA400_InsteadOfBeingDropped()
    {
        using var envelope = ParseOpenAI("""
            {"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}
            """);

        var error = Assert.Throws<ApiError>(() => Write(_adapter, envelope, "c"));
        Assert.Equal(400, error.Status);
        Assert.Contains("input_audio", error.Message);
    }

    [Fact]
    public void ImageDataUrlThatIsNotBase64_IsRejectedWithA400()
    {
        using var envelope = ParseOpenAI("""
            {"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml,<svg/>"}}]}]}
            """);

        Assert.Equal(400, Assert.Throws<ApiError>(() => Write(_adapter, envelope, "c")).Status);
    }

    [Fact]
    public void OpenAITemperatureAboveOne_IsClampedToAnthropicsRange()
    {
        using var envelope = ParseOpenAI("""{"model":"m","temperature":1.6,"messages":[{"role":"user","content":"Hi"}]}""");

        using var doc = Parse(Write(_adapter, envelope, "c"));

        Assert.Equal(1d, doc.RootElement.GetProperty("temperature").GetDouble());
    }

    [Fact]
    public void Headers_CarryTheKeyAndDefaultVersion_AndKeepAVersionAlreadySet()
    {
        var provider = new ProviderEndpoint { Name = "anthropic", Kind = ProviderKind.Anthropic, ApiKey = "sk-ant-test" };
        using var plain = new HttpRequestMessage(HttpMethod.Post, "https://api.anthropic.com/v1/messages");
        using var pinned = new HttpRequestMessage(HttpMethod.Post, "https://api.anthropic.com/v1/messages");
        pinned.Headers.TryAddWithoutValidation("anthropic-version", "2024-01-01");

        _adapter.AddHeaders(plain, provider.ApiKey);
        _adapter.AddHeaders(pinned, provider.ApiKey);

        Assert.Equal("sk-ant-test", Assert.Single(plain.Headers.GetValues("x-api-key")));
        Assert.Equal("2023-06-01", Assert.Single(plain.Headers.GetValues("anthropic-version")));
        Assert.Equal("2024-01-01", Assert.Single(pinned.Headers.GetValues("anthropic-version")));
        Assert.Equal("v1/messages", _adapter.RequestPath);
        Assert.Equal(ProviderKind.Anthropic, _adapter.Kind);
    }
}
