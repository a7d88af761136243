using System.Text.Json;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Tests.Pipeline;

namespace TokenRouter.Tests.Vendors;

public sealed class InboundAdapterTests
{
    private const string OpenAIMessages = """[{"role":"user","content":"hi"}]""";

    [Theory]
    [InlineData("""{"model":5,"messages":[{"role":"user","content":"hi"}]}""", "model")]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}]}""", "model")]
    [InlineData("""{"model":"m"}""", "messages")]
    [InlineData("""{"model":"m","messages":{"role":"user"}}""", "messages")]
    [InlineData("""{"model":"m","messages":[]}""", "messages")]
    [InlineData("""{"model":"m","messages":["hi"]}""", "messages[0]")]
    [InlineData("""{"model":"m","messages":[{"content":"hi"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m","messages":[{"role":1,"content":"hi"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m","messages":[{"role":"wizard","content":"hi"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":5}]}""", "messages[0].content")]
    [InlineData("""{"model":"m","messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":5}]}]}""", "messages[0].content[0].text")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}""", "messages[0].content[0].type")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":["x"]}]}""", "messages[0].content[0]")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","content":"r"}]}""", "messages[1].tool_call_id")]
    [InlineData("""{"model":"m","messages":[{"role":"tool","tool_call_id":5,"content":"r"}]}""", "messages[0].tool_call_id")]
    [InlineData("""{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":{}}]}""", "messages[0].tool_calls")]
    [InlineData("""{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":5}}]}]}""", "messages[0].tool_calls[0].function.arguments")]
    [InlineData("""{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}""", "messages[0].tool_calls[0].id")]
    [InlineData("""{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","function":{"name":7,"arguments":"{}"}}]}]}""", "messages[0].tool_calls[0].function.name")]
    [InlineData("""{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]}]}""", "messages[0].tool_calls[0].function")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":{}}""", "tools")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":["f"]}""", "tools[0]")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}""", "tools[0].function")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":1}}]}""", "tools[0].function.name")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","description":2}}]}""", "tools[0].function.description")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]}""", "tools[0].function.parameters")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","strict":"yes"}}]}""", "tools[0].function.strict")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":3,"function":{"name":"f"}}]}""", "tools[0].type")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}""", "temperature")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":[1]}""", "top_p")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":"10"}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1.5}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":-3}""", "max_completion_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", "stream")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":true}""", "stream_options")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":1}}""", "stream_options.include_usage")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":5}""", "stop")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a",5]}""", "stop")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":5}""", "tool_choice")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes"}""", "tool_choice")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"parallel_tool_calls":"no"}""", "parallel_tool_calls")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"prompt_cache_key":42}""", "prompt_cache_key")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":5}}]}]}""", "messages[0].content[0].image_url.url")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"f","arguments":false}}]}]}""", "messages[1].tool_calls[1].function.arguments")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b","cache_control":{"ttl":"9m"}}]}]}""", "messages[0].content[1].cache_control.ttl")]
    public void OpenAI_fields_of_the_wrong_type_are_a_400_naming_the_field(string body, string param)
    {
        var error = ApiErrors.Parse(body, ApiFormat.OpenAI);
        Assert.Equal(400, error.Status);
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(param, error.Param);
        Assert.Contains($"'{param}", error.Message); // the message names the whole path, not the nested reader's part of it
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":10}""", "model")]
    [InlineData("""{"model":["m"],"messages":[{"role":"user","content":"hi"}],"max_tokens":10}""", "model")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", "max_tokens")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":"10"}""", "max_tokens")]
    [InlineData("""{"model":"m","max_tokens":10}""", "messages")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":"hi"}""", "messages")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[]}""", "messages")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"content":"hi"}]}""", "messages.0.role")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}""", "messages.0.role")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user"}]}""", "messages.0.content")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":7}]}""", "messages.0.content")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"text":"x"}]}]}""", "messages.0.content.0.type")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":false}]}]}""", "messages.0.content.0.text")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":"yes"}]}]}""", "messages.0.content.0.cache_control")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"2h"}}]}]}""", "messages.0.content.0.cache_control.ttl")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}""", "messages.0.content.0.id")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":3,"input":{}}]}]}""", "messages.0.content.0.name")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","content":"r"}]}]}""", "messages.0.content.0.tool_use_id")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":5}]}]}""", "messages.0.content.0.content")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":"no"}]}]}""", "messages.0.content.0.is_error")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"},{"type":"text","text":[]}]}]}]}""", "messages.2.content.1.content.1.text")]
    [InlineData("""{"model":"m","max_tokens":10,"system":5,"messages":[{"role":"user","content":"hi"}]}""", "system")]
    [InlineData("""{"model":"m","max_tokens":10,"system":[{"type":"text","text":5}],"messages":[{"role":"user","content":"hi"}]}""", "system.0.text")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":{}}""", "tools")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"input_schema":{}}]}""", "tools.0.name")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f"}]}""", "tools.0.input_schema")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":"{}"}]}""", "tools.0.input_schema")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","description":1,"input_schema":{}}]}""", "tools.0.description")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tool_choice":"auto"}""", "tool_choice")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"maybe"}}""", "tool_choice.type")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"tool"}}""", "tool_choice.name")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"auto","disable_parallel_tool_use":"yes"}}""", "tool_choice.disable_parallel_tool_use")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stop_sequences":5}""", "stop_sequences")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"temperature":"0.5"}""", "temperature")]
    [InlineData("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream":1}""", "stream")]
    public void Anthropic_fields_of_the_wrong_type_are_a_400_naming_the_field(string body, string param)
    {
        var error = ApiErrors.Parse(body, ApiFormat.Anthropic);
        Assert.Equal(400, error.Status);
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(param, error.Param);
        Assert.Contains(param, error.Message);
        Assert.DoesNotContain("'.", error.Message);
        Assert.False(error.Message.StartsWith('.'), error.Message);
    }

    [Theory]
    [InlineData(ApiFormat.OpenAI, "")]
    [InlineData(ApiFormat.OpenAI, "{\"model\":")]
    [InlineData(ApiFormat.OpenAI, "{\"model\":\"m\",}")]
    [InlineData(ApiFormat.OpenAI, "[1,2]")]
    [InlineData(ApiFormat.OpenAI, "\"just a string\"")]
    [InlineData(ApiFormat.Anthropic, "not json")]
    [InlineData(ApiFormat.Anthropic, "{\"model\":\"m\"} {}")]
    [InlineData(ApiFormat.Anthropic, "null")]
    public void A_body_that_is_not_a_JSON_object_is_a_400(ApiFormat format, string body)
    {
        var error = ApiErrors.Parse(body, format);
        Assert.Equal(400, error.Status);
        Assert.Equal("invalid_request_error", error.Type);
    }

    [Theory]
    [InlineData(ApiFormat.OpenAI, """{"model":"m","messages":[{"role":"user","content":"cut emoji \ud83d"}]}""")]
    [InlineData(ApiFormat.Anthropic, """{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"cut emoji \ud83d"}]}""")]
    [InlineData(ApiFormat.Anthropic, """{"model":"m","max_tokens":5,"system":"\udc00","messages":[{"role":"user","content":"hi"}]}""")]
    public void A_string_with_an_unpaired_surrogate_escape_is_a_400_not_a_crash(ApiFormat format, string body)
    {
        // A JavaScript client that cuts a string inside an emoji sends "\ud83d" (JSON.stringify escapes it).
        var error = ApiErrors.Parse(body, format);
        Assert.Equal(400, error.Status);
    }

    [Fact]
    public void Unknown_OpenAI_fields_are_kept_and_reach_an_OpenAI_provider()
    {
        const string body = """
            {"model":"gpt-4o","user":"u-1","seed":7,"metadata":{"b":2,"a":1},"response_format":{"type":"json_object"},"logit_bias":{"50256":-100},
             "messages":[
              {"role":"user","content":"hi","x_trace":"t-1"},
              {"role":"assistant","content":"hello","refusal":null,"annotations":[]},
              {"role":"user","content":[{"type":"text","text":"look"},{"type":"input_audio","input_audio":{"data":"AAA=","format":"wav"}}]}]}
            """;
        using (var envelope = PipelineHarness.Parse(body, ApiFormat.OpenAI))
        {
            Assert.Equal(["user", "seed", "metadata", "response_format", "logit_bias"], envelope.Extra!.Select(e => e.Key));
            Assert.Equal(["x_trace"], envelope.Messages[0].Extra!.Select(e => e.Key));
            Assert.Equal(["refusal", "annotations"], envelope.Messages[1].Extra!.Select(e => e.Key));
            Assert.Equal(PartKind.Other, envelope.Messages[2].Parts![1].Kind);
        }

        foreach (var target in new[] { ProviderKind.OpenAI, ProviderKind.DeepSeek })
        {
            var json = new PipelineHarness().Run(body, ApiFormat.OpenAI, target).Json;
            Assert.Equal("u-1", json.GetProperty("user").GetString());
            Assert.Equal(7, json.GetProperty("seed").GetInt32());
            Assert.Equal(1, json.GetProperty("metadata").GetProperty("a").GetInt32());
            Assert.Equal("json_object", json.GetProperty("response_format").GetProperty("type").GetString());
            Assert.Equal(-100, json.GetProperty("logit_bias").GetProperty("50256").GetInt32());
            var messages = json.GetProperty("messages");
            Assert.Equal("t-1", messages[0].GetProperty("x_trace").GetString());
            Assert.Equal(JsonValueKind.Null, messages[1].GetProperty("refusal").ValueKind);
            Assert.Equal("wav", messages[2].GetProperty("content")[1].GetProperty("input_audio").GetProperty("format").GetString());
        }
    }

    [Fact]
    public void The_detail_of_an_OpenAI_image_reaches_an_OpenAI_provider()
    {
        // "detail":"low" decides what the image costs (85 tokens instead of a tiled high-resolution read).
        const string body = """
            {"model":"gpt-4o","messages":[{"role":"user","content":[
              {"type":"text","text":"What is this?"},
              {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]}]}
            """;
        var json = new PipelineHarness().Run(body, ApiFormat.OpenAI, ProviderKind.OpenAI).Json;
        var image = json.GetProperty("messages")[0].GetProperty("content")[1].GetProperty("image_url");
        Assert.Equal("https://example.com/cat.jpg", image.GetProperty("url").GetString());
        Assert.Equal("low", image.GetProperty("detail").GetString());
    }

    [Fact]
    public void Unknown_Anthropic_fields_are_kept_and_reach_an_Anthropic_provider()
    {
        const string body = """
            {"model":"claude","max_tokens":10,"metadata":{"user_id":"u1"},"thinking":{"type":"enabled","budget_tokens":1024},"top_k":5,"service_tier":"auto",
             "system":[{"type":"text","text":"S","citations":null}],
             "tools":[{"name":"f","description":"F","input_schema":{"type":"object"},"x_vendor":{"k":1}},{"type":"bash_20250124","name":"bash"}],
             "messages":[
              {"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"},"title":"T"},{"type":"text","text":"Q"}]},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1},"x_block":true}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok","is_error":false,"x_result":"r"}]}]}
            """;
        using (var envelope = PipelineHarness.Parse(body, ApiFormat.Anthropic))
            Assert.Equal(["metadata", "thinking", "top_k", "service_tier"], envelope.Extra!.Select(e => e.Key));

        var json = new PipelineHarness().Run(body, ApiFormat.Anthropic, ProviderKind.Anthropic).Json;
        Assert.Equal("u1", json.GetProperty("metadata").GetProperty("user_id").GetString());
        Assert.Equal(1024, json.GetProperty("thinking").GetProperty("budget_tokens").GetInt32());
        Assert.Equal(5, json.GetProperty("top_k").GetInt32());
        Assert.Equal("auto", json.GetProperty("service_tier").GetString());
        var tools = json.GetProperty("tools").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        Assert.Equal(1, tools["f"].GetProperty("x_vendor").GetProperty("k").GetInt32());
        Assert.Equal("bash_20250124", tools["bash"].GetProperty("type").GetString());
        var messages = json.GetProperty("messages");
        Assert.Equal("T", messages[0].GetProperty("content")[0].GetProperty("title").GetString());
        Assert.Equal("sig", messages[1].GetProperty("content")[0].GetProperty("signature").GetString());
        Assert.True(messages[1].GetProperty("content")[1].GetProperty("x_block").GetBoolean());
        Assert.Equal("r", messages[2].GetProperty("content")[0].GetProperty("x_result").GetString());
        Assert.False(messages[2].GetProperty("content")[0].GetProperty("is_error").GetBoolean());
    }

    [Fact]
    public void OpenAI_requests_are_read_into_the_envelope_faithfully()
    {
        using var envelope = PipelineHarness.Parse("""
            {"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":50,"temperature":0.5,"top_p":0.9,
             "stop":"END","tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false,"prompt_cache_key":"k",
             "messages":[{"role":"developer","content":"D"},{"role":"user","content":"hi","name":"bob"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":{"a":1}}}]},
              {"role":"tool","tool_call_id":"c1","content":"r"}],
             "tools":[{"type":"function","function":{"name":"f","description":"F","parameters":{"type":"object"},"strict":true}}]}
            """, ApiFormat.OpenAI);

        Assert.Equal(ApiFormat.OpenAI, envelope.ClientFormat);
        Assert.True(envelope.Stream);
        Assert.True(envelope.ClientWantsStreamUsage);
        Assert.Equal(50, envelope.MaxTokens);
        Assert.True(envelope.MaxTokensIsCompletionTokens);
        Assert.Equal(0.5, envelope.Temperature);
        Assert.Equal(0.9, envelope.TopP);
        Assert.Equal(["END"], envelope.Stop!);
        Assert.Equal(new ToolChoice(ToolChoiceKind.Function, "f"), envelope.ToolChoice);
        Assert.False(envelope.ParallelToolCalls);
        Assert.Equal("k", envelope.PromptCacheKey);
        Assert.Equal([MessageRole.Developer, MessageRole.User, MessageRole.Assistant, MessageRole.Tool], envelope.Messages.Select(m => m.Role));
        Assert.Equal("bob", envelope.Messages[1].Name);
        Assert.Equal("""{"a":1}""", envelope.Messages[2].ToolCalls![0].Arguments);
        Assert.Equal("c1", envelope.Messages[3].ToolCallId);
        Assert.True(envelope.Tools[0].Strict);
        Assert.Null(envelope.Extra);
    }

    [Fact]
    public void Anthropic_requests_are_read_into_the_envelope_faithfully()
    {
        using var envelope = PipelineHarness.Parse("""
            {"model":"claude","max_tokens":64,"stream":true,"stop_sequences":["A","B"],"temperature":1,
             "tool_choice":{"type":"any","disable_parallel_tool_use":true},"system":"S",
             "messages":[{"role":"user","content":"hi"},
              {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"b":1,"a":2}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"r"}],"is_error":true}]}],
             "tools":[{"name":"f","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral","ttl":"1h"}}]}
            """, ApiFormat.Anthropic);

        Assert.Equal(ApiFormat.Anthropic, envelope.ClientFormat);
        Assert.Equal(64, envelope.MaxTokens);
        Assert.True(envelope.Stream);
        Assert.Equal(["A", "B"], envelope.Stop!);
        Assert.Equal(new ToolChoice(ToolChoiceKind.Required, null, true), envelope.ToolChoice);
        Assert.False(envelope.ParallelToolCalls);
        Assert.True(envelope.SystemWasString);
        Assert.Equal("S", envelope.System![0].Text);
        var use = envelope.Messages[1].Parts![0];
        Assert.Equal((PartKind.ToolUse, "t1", "f"), (use.Kind, use.Id, use.Name));
        Assert.True(JsonMeaning.Equal("""{"a":2,"b":1}""", use.Arguments!));
        var result = envelope.Messages[2].Parts![0];
        Assert.Equal((PartKind.ToolResult, "t1", true), (result.Kind, result.Id, result.IsError));
        Assert.Equal("r", result.Content![0].Text);
        Assert.Equal(CacheControl.OneHour, envelope.Tools[0].CacheControl);
    }
}
