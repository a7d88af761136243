using TokenRouter.Gateway.Vendors.OpenAI;
using static TokenRouter.Tests.Vendors.ProviderTestJson;

namespace TokenRouter.Tests.Vendors.OpenAI;

/// <summary>Golden tests: an Anthropic client's request, as the existing OpenAI writer sends it to an OpenAI provider.</summary>
public sealed class OpenAIAdapterCrossFormatTests
{
    private readonly OpenAIAdapter _adapter = new();

    [Fact]
    public void AnthropicRequest_ToolUseBecomesToolCalls_ToolResultsBecomeToolMessagesBeforeTheUserText()
    {
        using var envelope = ParseAnthropic("""
        {"model":"claude-x","max_tokens":100,"system":"Be brief.",
         "messages":[
          {"role":"user","content":"Weather?"},
          {"role":"assistant","content":[
            {"type":"text","text":"Checking."},
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
            {"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},
          {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},
            {"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"24C"}],"is_error":true},
            {"type":"text","text":"And tomorrow?","cache_control":{"type":"ephemeral"}}]}],
         "tools":[{"name":"get_weather","description":"W","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
         "tool_choice":{"type":"any","disable_parallel_tool_use":true},
         "stop_sequences":["X"],"temperature":0.2,"stream":true,"metadata":{"user_id":"u"}}
        """);

        var json = Write(_adapter, envelope, "gpt-4o");

        Assert.Equal(Compact("""
        {"model":"gpt-4o",
         "messages":[
          {"role":"system","content":"Be brief."},
          {"role":"user","content":"Weather?"},
          {"role":"assistant","content":[{"type":"text","text":"Checking."}],"tool_calls":[
            {"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"toolu_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
          {"role":"tool","tool_call_id":"toolu_1","content":"18C"},
          {"role":"tool","tool_call_id":"toolu_2","content":"24C"},
          {"role":"user","content":[{"type":"text","text":"And tomorrow?"}]}],
         "tools":[{"type":"function","function":{"name":"get_weather","description":"W","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
         "tool_choice":"required","parallel_tool_calls":false,"max_completion_tokens":100,"temperature":0.2,"stop":["X"],
         "stream":true,"stream_options":{"include_usage":true},"user":"u"}
        """), json);
    }

    [Fact]
    public void AnthropicAssistantTurnOfOnlyToolUse_HasNullContentAndToolCalls()
    {
        using var envelope = ParseAnthropic("""
        {"model":"claude-x","max_tokens":100,
         "messages":[
          {"role":"user","content":"Go"},
          {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]}],
         "tools":[{"name":"f","input_schema":{"type":"object"}}]}
        """);

        var json = Write(_adapter, envelope, "gpt-4o");

        Assert.Equal(Compact("""
        {"model":"gpt-4o",
         "messages":[
          {"role":"user","content":"Go"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"toolu_1","content":"ok"}],
         "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
         "max_completion_tokens":100}
        """), json);
    }
}
