using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Vendors.Anthropic;
using static TokenRouter.Tests.Vendors.ProviderTestJson;

namespace TokenRouter.Tests.Vendors.Anthropic;

/// <summary>Golden tests: an Anthropic client's request to an Anthropic provider keeps what the client sent.</summary>
public sealed class AnthropicRoundTripTests
{
    private readonly AnthropicAdapter _adapter = new();

    /// <summary>Every kind of block, server tool, cache mark and unknown field Anthropic has, in one request.</summary>
    private const string EveryAnthropicField = """
        {"model":"claude-sonnet-4-5","max_tokens":1024,
         "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
         "tools":[
          {"name":"get_weather","description":"W","input_schema":{"type":"object","properties":{"city":{"type":"string"}}},"cache_control":{"type":"ephemeral"}},
          {"type":"web_search_20250305","name":"web_search","max_uses":3}],
         "tool_choice":{"type":"auto","disable_parallel_tool_use":false},
         "messages":[
          {"role":"user","content":"Hi"},
          {"role":"assistant","content":[
            {"type":"thinking","thinking":"hmm","signature":"sig"},
            {"type":"text","text":"Let me check."},
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
          {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}],"is_error":false},
            {"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"},"cache_control":{"type":"ephemeral"}},
            {"type":"image","source":{"type":"file","file_id":"file_1"}}]}],
         "stream":true,"metadata":{"user_id":"u1"},"thinking":{"type":"enabled","budget_tokens":2000},"top_k":5}
        """;

    [Fact]
    public void AnthropicRequest_KeepsCacheControlBlocksServerToolsAndUnknownFields()
    {
        using var envelope = ParseAnthropic(EveryAnthropicField);

        var json = Write(_adapter, envelope, "claude-sonnet-4-5-20250929");

        // Byte for byte what the client sent; only the model is the provider's dated name.
        Assert.Equal(Compact(EveryAnthropicField.Replace("\"claude-sonnet-4-5\"", "\"claude-sonnet-4-5-20250929\"", StringComparison.Ordinal)), json);
    }

    [Fact]
    public void StringSystem_StaysAString_UntilTheCacheInjectorMarksIt()
    {
        using var envelope = ParseAnthropic("""{"model":"c","max_tokens":10,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal("""{"model":"c","max_tokens":10,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}]}""", Write(_adapter, envelope, "c"));

        envelope.System![0].CacheControl = CacheControl.OneHour;
        envelope.Messages[0].CacheBreakpoint = CacheControl.FiveMinutes;

        Assert.Equal(
            """{"model":"c","max_tokens":10,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral"}}]}]}""",
            Write(_adapter, envelope, "c"));
    }

    [Fact]
    public void InjectedCacheControl_ReplacesTheClientsOnRawBlocksAndTools_AndClearingItRemovesIt()
    {
        using var envelope = ParseAnthropic("""
        {"model":"c","max_tokens":10,
         "tools":[{"type":"bash_20250124","name":"bash","cache_control":{"type":"ephemeral"}}],
         "messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"}}]}]}
        """);
        envelope.Tools[0].CacheControl = null;
        envelope.Messages[0].Parts![0].CacheControl = CacheControl.OneHour;

        Assert.Equal(Compact("""
        {"model":"c","max_tokens":10,
         "tools":[{"type":"bash_20250124","name":"bash"}],
         "messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"d"},"cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}
        """), Write(_adapter, envelope, "c"));
    }

    [Fact]
    public void CanonicalizedToolUseInput_IsWrittenInsteadOfTheClientsBytes()
    {
        using var envelope = ParseAnthropic("""
        {"model":"c","max_tokens":10,
         "tools":[{"name":"f","input_schema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"string"}}}}],
         "messages":[{"role":"user","content":"Go"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{ "b": "2", "a": "1" }}]}]}
        """);
        new Canonicalizer().Canonicalize(envelope);

        Assert.Equal(Compact("""
        {"model":"c","max_tokens":10,
         "tools":[{"name":"f","input_schema":{"properties":{"a":{"type":"string"},"b":{"type":"string"}},"type":"object"}}],
         "messages":[{"role":"user","content":"Go"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":"1","b":"2"}}]}]}
        """), Write(_adapter, envelope, "c"));
    }
}
