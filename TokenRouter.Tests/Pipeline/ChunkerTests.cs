using System.Text.Json;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Pipeline;

public sealed class ChunkerTests
{
    private static int QueryStart(string body, ApiFormat format)
    {
        using var envelope = PipelineHarness.Parse(body, format);
        Chunker.Chunk(envelope);
        return envelope.QueryStart;
    }

    [Fact]
    public void QueryStart_is_the_last_plain_user_turn()
    {
        Assert.Equal(3, QueryStart("""
            {"model":"m","messages":[
             {"role":"system","content":"S"},
             {"role":"user","content":"first"},
             {"role":"assistant","content":"A"},
             {"role":"user","content":[{"type":"text","text":"second"}]},
             {"role":"assistant","content":"B"}]}
            """, ApiFormat.OpenAI));
    }

    [Fact]
    public void OpenAI_tool_results_are_not_a_user_turn()
    {
        Assert.Equal(1, QueryStart("""
            {"model":"m","messages":[
             {"role":"system","content":"S"},
             {"role":"user","content":"book it"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"c1","content":"done"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c2","type":"function","function":{"name":"g","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"c2","content":"done too"}]}
            """, ApiFormat.OpenAI));
    }

    [Fact]
    public void Anthropic_user_turns_holding_only_tool_results_are_not_a_user_turn()
    {
        Assert.Equal(0, QueryStart("""
            {"model":"m","max_tokens":10,"messages":[
             {"role":"user","content":"book it"},
             {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"done"}]},
             {"role":"assistant","content":[{"type":"tool_use","id":"t2","name":"g","input":{}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"ok"}]}]}]}
            """, ApiFormat.Anthropic));
    }

    [Fact]
    public void An_Anthropic_user_turn_with_tool_results_and_text_is_a_user_turn()
    {
        Assert.Equal(2, QueryStart("""
            {"model":"m","max_tokens":10,"messages":[
             {"role":"user","content":"book it"},
             {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"done"},{"type":"text","text":"and cancel the other"}]}]}
            """, ApiFormat.Anthropic));
    }

    [Fact]
    public void Without_a_plain_user_turn_the_last_message_is_the_query()
    {
        Assert.Equal(1, QueryStart("""
            {"model":"m","messages":[{"role":"system","content":"S"},{"role":"assistant","content":"prefill"}]}
            """, ApiFormat.OpenAI));
    }

    [Fact]
    public void Chunking_marks_a_boundary_and_moves_or_splits_no_message()
    {
        using var envelope = PipelineHarness.Parse("""
            {"model":"m","messages":[
             {"role":"system","content":"S"},
             {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
             {"role":"assistant","content":"A"},
             {"role":"system","content":"mid"},
             {"role":"user","content":"q"}]}
            """, ApiFormat.OpenAI);
        var before = envelope.Messages.ToList();
        var parts = envelope.Messages[1].Parts!.ToList();

        Chunker.Chunk(envelope);

        Assert.Equal(before, envelope.Messages);
        Assert.Equal(parts, envelope.Messages[1].Parts!);
        Assert.Equal(["S", null, "A", "mid", "q"], envelope.Messages.Select(m => m.Text));
        Assert.Equal(4, envelope.QueryStart);
    }

    [Fact]
    public void LeadingSystemCount_counts_only_leading_system_and_developer_messages()
    {
        using var envelope = PipelineHarness.Parse("""
            {"model":"m","messages":[
             {"role":"system","content":"S"},{"role":"developer","content":"D"},
             {"role":"user","content":"u"},{"role":"system","content":"mid"},{"role":"user","content":"q"}]}
            """, ApiFormat.OpenAI);
        Assert.Equal(2, Chunker.LeadingSystemCount(envelope));
    }

    private const string MidConversationSystem = """
        {"model":"gpt-4o","messages":[
         {"role":"system","content":"You are an airline agent."},
         {"role":"user","content":"Change my flight."},
         {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_reservation","arguments":"{\"id\": \"X1\"}"}}]},
         {"role":"tool","tool_call_id":"c1","content":"reservation X1"},
         {"role":"system","content":"Policy update: be brief."},
         {"role":"user","content":"Thanks, go ahead."}],
         "tools":[
          {"type":"function","function":{"name":"get_reservation","description":"Get one.","parameters":{"type":"object","properties":{"id":{"type":"string"}}}}},
          {"type":"function","function":{"name":"cancel","description":"Cancel.","parameters":{"type":"object","properties":{}}}}]}
        """;

    [Theory]
    [InlineData(ProviderKind.OpenAI)]
    [InlineData(ProviderKind.DeepSeek)]
    public void A_system_message_in_mid_conversation_is_not_moved_for_OpenAI_wire_targets(ProviderKind target)
    {
        var outbound = new PipelineHarness().Run(MidConversationSystem, ApiFormat.OpenAI, target);

        var messages = outbound.Json.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["system", "user", "assistant", "tool", "system", "user"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("Policy update: be brief.", messages[4].GetProperty("content").GetString());
    }

    [Fact]
    public void A_system_message_in_mid_conversation_stays_in_place_for_an_Anthropic_target()
    {
        var outbound = new PipelineHarness().Run(MidConversationSystem, ApiFormat.OpenAI, ProviderKind.Anthropic);
        var json = outbound.Json;

        var system = json.GetProperty("system").EnumerateArray().Select(b => b.GetProperty("text").GetString()).ToList();
        Assert.Equal(["You are an airline agent."], system);
        var sequence = new List<string>();
        foreach (var m in json.GetProperty("messages").EnumerateArray())
        {
            var content = m.GetProperty("content");
            if (content.ValueKind == JsonValueKind.String)
            {
                sequence.Add(content.GetString()!);
                continue;
            }
            foreach (var b in content.EnumerateArray())
            {
                sequence.Add(b.GetProperty("type").GetString() switch
                {
                    "text" => b.GetProperty("text").GetString()!,
                    "tool_use" => "tool_use:" + b.GetProperty("name").GetString(),
                    "tool_result" => "tool_result:" + b.GetProperty("content").GetString(),
                    var other => other!,
                });
            }
        }
        Assert.Equal(["Change my flight.", "tool_use:get_reservation", "tool_result:reservation X1", "Policy update: be brief.", "Thanks, go ahead."], sequence);
    }
}
