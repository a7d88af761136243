using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Pipeline;

public sealed class RequestPipelineTests
{
    public static TheoryData<ProviderKind> AllTargets => new() { ProviderKind.OpenAI, ProviderKind.DeepSeek, ProviderKind.Anthropic };

    // ---- same logical request ⇒ same bytes ------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Real_agent_requests_from_any_OpenAI_client_program_give_identical_bytes_and_FullHash(ProviderKind target)
    {
        var rng = new Random(1000 + (int)target);
        var warm = new PipelineHarness();
        var checkedRequests = 0;
        foreach (var session in AgentSessions.Sample(tauBench: 10, toolBench: 13))
        {
            foreach (var request in session.OpenAIRequests())
            {
                var reference = new PipelineHarness().Run(request.ToJsonString(), ApiFormat.OpenAI, target);
                // One variant on a gateway that has never seen the conversation, another on one that has.
                var variant = new ClientVariant(rng).Render(request);
                AssertSame(reference, new PipelineHarness().Run(variant, ApiFormat.OpenAI, target), $"{session.Id}, fresh gateway, variant:\n{variant}");
                variant = new ClientVariant(rng).Render(request);
                AssertSame(reference, warm.Run(variant, ApiFormat.OpenAI, target), $"{session.Id}, warm gateway, variant:\n{variant}");
                checkedRequests++;
            }
        }
        Assert.True(checkedRequests > 100, $"only {checkedRequests} requests checked");
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Real_agent_requests_from_any_Anthropic_client_program_give_identical_bytes_and_FullHash(ProviderKind target)
    {
        var rng = new Random(2000 + (int)target);
        var warm = new PipelineHarness();
        foreach (var session in AgentSessions.Sample(tauBench: 6, toolBench: 6))
        {
            for (var k = 1; k < session.Turns.Count; k += 3)
            {
                if ((string?)session.Turns[k]!["role"] != "assistant") continue;
                var request = session.AnthropicRequest(k);
                var reference = new PipelineHarness().Run(request.ToJsonString(), ApiFormat.Anthropic, target);
                for (var v = 0; v < 2; v++)
                {
                    var variant = new ClientVariant(rng).Render(request);
                    AssertSame(reference, new PipelineHarness().Run(variant, ApiFormat.Anthropic, target), $"{session.Id} turn {k}, variant:\n{variant}");
                    AssertSame(reference, warm.Run(variant, ApiFormat.Anthropic, target), $"{session.Id} turn {k}, warm gateway");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Tools_in_any_order_produce_identical_bytes(ProviderKind target)
    {
        var request = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().Skip(2).First();
        var rng = new Random(3);
        var reference = new PipelineHarness().Run(request.ToJsonString(), ApiFormat.OpenAI, target);
        for (var i = 0; i < 10; i++)
            AssertSame(reference, new PipelineHarness().Run(new ClientVariant(rng, Variation.ToolOrder).Render(request), ApiFormat.OpenAI, target), "tool order");
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Schema_key_order_argument_spacing_and_number_formats_produce_identical_bytes(ProviderKind target)
    {
        const string spaced = """
            {"model":"gpt-4o","messages":[
             {"role":"user","content":"Pay 100 for booking 7."},
             {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"pay","arguments":"{\"amount\": 100.0, \"booking\": {\"id\": 7, \"tags\": [\"b\", \"a\"]}}"}}]},
             {"role":"tool","tool_call_id":"call_1","content":"paid"}],
             "tools":[{"type":"function","function":{"name":"pay","description":"Pay.","parameters":
               {"type":"object","required":["amount","booking"],"properties":{"booking":{"type":"object","properties":{"tags":{"type":"array"},"id":{"type":"integer","minimum":1.0}}},"amount":{"type":"number","maximum":1e4}}}}}],
             "max_tokens":100}
            """;
        const string compact = """
            {"max_tokens":100,"tools":[{"function":{"parameters":{"properties":{"amount":{"maximum":10000,"type":"number"},"booking":{"properties":{"id":{"minimum":1,"type":"integer"},"tags":{"type":"array"}},"type":"object"}},"required":["amount","booking"],"type":"object"},"description":"Pay.","name":"pay"},"type":"function"}],
             "messages":[
             {"content":"Pay 100 for booking 7.","role":"user"},
             {"tool_calls":[{"function":{"arguments":"{\"booking\":{\"tags\":[\"b\",\"a\"],\"id\":7},\"amount\":1e2}","name":"pay"},"type":"function","id":"call_1"}],"content":null,"role":"assistant"},
             {"content":"paid","tool_call_id":"call_1","role":"tool"}],"model":"gpt-4o"}
            """;
        AssertSame(new PipelineHarness().Run(spaced, ApiFormat.OpenAI, target), new PipelineHarness().Run(compact, ApiFormat.OpenAI, target), "formatting");
    }

    // ---- different meaning ⇒ different hash ------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void A_changed_message_text_gives_a_different_FullHash_and_the_same_PrefixHash(ProviderKind target)
    {
        var request = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().Skip(3).First();
        var changed = request.DeepClone();
        var lastUser = changed["messages"]!.AsArray().Last(m => (string?)m!["role"] == "user")!;
        lastUser["content"] = (string)lastUser["content"]! + ".";

        var a = new PipelineHarness().Run(request.ToJsonString(), ApiFormat.OpenAI, target);
        var b = new PipelineHarness().Run(changed.ToJsonString(), ApiFormat.OpenAI, target);

        Assert.NotEqual(a.FullHash, b.FullHash);
        Assert.Equal(a.PrefixHash, b.PrefixHash);
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void A_changed_tool_description_gives_a_different_FullHash_and_PrefixHash(ProviderKind target)
    {
        var request = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().First();
        var changed = request.DeepClone();
        var fn = changed["tools"]![5]!["function"]!;
        fn["description"] = (string)fn["description"]! + " ";

        var a = new PipelineHarness().Run(request.ToJsonString(), ApiFormat.OpenAI, target);
        var b = new PipelineHarness().Run(changed.ToJsonString(), ApiFormat.OpenAI, target);

        Assert.NotEqual(a.FullHash, b.FullHash);
        Assert.NotEqual(a.PrefixHash, b.PrefixHash);
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Changed_sampling_parameters_give_a_different_FullHash(ProviderKind target)
    {
        var request = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().First();
        var changed = request.DeepClone();
        changed["temperature"] = 0.7;

        Assert.NotEqual(
            new PipelineHarness().Run(request.ToJsonString(), ApiFormat.OpenAI, target).FullHash,
            new PipelineHarness().Run(changed.ToJsonString(), ApiFormat.OpenAI, target).FullHash);
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void The_same_request_from_another_key_has_another_FullHash(ProviderKind target)
    {
        var body = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().First().ToJsonString();
        var harness = new PipelineHarness();
        Assert.NotEqual(harness.Run(body, ApiFormat.OpenAI, target, "key-1").FullHash, harness.Run(body, ApiFormat.OpenAI, target, "key-2").FullHash);
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void With_a_global_dedup_scope_the_same_request_from_two_keys_has_one_FullHash(ProviderKind target)
    {
        var body = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().First().ToJsonString();
        var harness = new PipelineHarness(o => o.DedupScope = DedupScope.Global);
        var one = harness.Run(body, ApiFormat.OpenAI, target, "key-1");
        var two = harness.Run(body, ApiFormat.OpenAI, target, "key-2");
        Assert.Equal(one.Body, two.Body);
        Assert.Equal(one.FullHash, two.FullHash);
    }

    [Fact]
    public void The_FullHash_is_the_hash_of_the_outbound_bytes_provider_and_scope()
    {
        var body = AgentSessions.All.First(s => !s.IsToolBench).OpenAIRequests().First().ToJsonString();
        foreach (var target in Targets.All)
        {
            var outbound = new PipelineHarness().Run(body, ApiFormat.OpenAI, target, "key-1");
            Assert.Equal(Hasher.ComputeFullHash(Encoding.UTF8.GetBytes(outbound.Body), target.Provider.Name, "key-1"), outbound.FullHash);
        }
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void An_unpaired_surrogate_escape_inside_a_tool_schema_is_a_client_error_not_a_crash(ProviderKind target)
    {
        const string body = """
            {"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"q":{"type":"string","description":"cut \ud83d"}}}}}]}
            """;
        var error = Assert.Throws<TokenRouter.Gateway.Errors.ApiError>(() =>
        {
            using var envelope = PipelineHarness.Parse(body, ApiFormat.OpenAI);
            new PipelineHarness().Run(envelope, Targets.For(target));
        });
        Assert.Equal(400, error.Status);
        Assert.Equal("tools[0].function.parameters.properties.q.description", error.Param);
    }

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Arguments_with_an_unpaired_surrogate_escape_are_forwarded_as_sent(ProviderKind target)
    {
        const string body = """
            {"model":"gpt-4o","messages":[{"role":"user","content":"hi"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"q\": \"\\ud83d\"}"}}]},
             {"role":"tool","tool_call_id":"c1","content":"ok"}],
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}
            """;
        var outbound = new PipelineHarness().Run(body, ApiFormat.OpenAI, target);
        Assert.Contains("ud83d", outbound.Body, StringComparison.Ordinal);
    }

    // ---- meaning preserved -----------------------------------------------------------------------------------------

    [Theory]
    [InlineData(ProviderKind.OpenAI)]
    [InlineData(ProviderKind.DeepSeek)]
    public void Message_order_texts_tool_calls_and_tools_reach_an_OpenAI_wire_target_unchanged(ProviderKind target)
    {
        var rng = new Random(4);
        foreach (var session in AgentSessions.Sample(tauBench: 8, toolBench: 13))
        {
            var request = session.OpenAIRequests().Last();
            var sent = JsonDocument.Parse(request.ToJsonString()).RootElement;
            var outbound = new PipelineHarness().Run(new ClientVariant(rng).Render(request), ApiFormat.OpenAI, target).Json;

            var inMessages = sent.GetProperty("messages").EnumerateArray().ToList();
            var outMessages = outbound.GetProperty("messages").EnumerateArray().ToList();
            Assert.Equal(inMessages.Count, outMessages.Count);
            for (var i = 0; i < inMessages.Count; i++)
            {
                var (a, b) = (inMessages[i], outMessages[i]);
                var at = $"{session.Id} messages[{i}]";
                Assert.Equal(a.GetProperty("role").GetString(), b.GetProperty("role").GetString());
                Assert.True(a.GetProperty("content").ValueKind == b.GetProperty("content").ValueKind, at);
                if (a.GetProperty("content").ValueKind == JsonValueKind.String)
                    Assert.Equal(a.GetProperty("content").GetString(), b.GetProperty("content").GetString());
                foreach (var field in new[] { "tool_call_id", "name" })
                    Assert.Equal(Str(a, field), Str(b, field));
                var inCalls = a.TryGetProperty("tool_calls", out var ic) ? ic.EnumerateArray().ToList() : [];
                var outCalls = b.TryGetProperty("tool_calls", out var oc) ? oc.EnumerateArray().ToList() : [];
                Assert.Equal(inCalls.Count, outCalls.Count);
                foreach (var (x, y) in inCalls.Zip(outCalls))
                {
                    Assert.Equal(x.GetProperty("id").GetString(), y.GetProperty("id").GetString());
                    Assert.Equal(x.GetProperty("function").GetProperty("name").GetString(), y.GetProperty("function").GetProperty("name").GetString());
                    var args = x.GetProperty("function").GetProperty("arguments").GetString()!;
                    var outArgs = y.GetProperty("function").GetProperty("arguments").GetString()!;
                    Assert.True(JsonMeaning.Equal(args, outArgs), $"{at}: {args} → {outArgs}");
                }
            }

            var inTools = sent.GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("function")).ToDictionary(f => f.GetProperty("name").GetString()!);
            var outTools = outbound.GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("function")).ToList();
            Assert.Equal(inTools.Keys.Order(StringComparer.Ordinal), outTools.Select(f => f.GetProperty("name").GetString()!).Order(StringComparer.Ordinal));
            foreach (var f in outTools)
            {
                var original = inTools[f.GetProperty("name").GetString()!];
                Assert.Equal(original.GetProperty("description").GetString(), f.GetProperty("description").GetString());
                Assert.True(JsonMeaning.Equal(original.GetProperty("parameters"), f.GetProperty("parameters")), f.GetProperty("name").GetString());
            }
        }
    }

    [Fact]
    public void Message_order_texts_tool_calls_and_tools_reach_an_Anthropic_target_unchanged()
    {
        var rng = new Random(5);
        foreach (var session in AgentSessions.Sample(tauBench: 8, toolBench: 13))
        {
            var request = session.OpenAIRequests().Last();
            var sent = JsonDocument.Parse(request.ToJsonString()).RootElement;
            var outbound = new PipelineHarness().Run(new ClientVariant(rng).Render(request), ApiFormat.OpenAI, ProviderKind.Anthropic).Json;

            var messages = sent.GetProperty("messages").EnumerateArray().ToList();
            var system = outbound.GetProperty("system").EnumerateArray().Select(b => b.GetProperty("text").GetString()).ToList();
            Assert.Equal([messages[0].GetProperty("content").GetString()], system);

            var expected = new List<string>();
            foreach (var m in messages.Skip(1))
            {
                var role = m.GetProperty("role").GetString();
                if (role == "tool")
                {
                    expected.Add($"user tool_result {m.GetProperty("tool_call_id").GetString()} {m.GetProperty("content").GetString()}");
                    continue;
                }
                if (m.GetProperty("content").ValueKind == JsonValueKind.String && m.GetProperty("content").GetString() is { Length: > 0 } text)
                    expected.Add($"{role} text {text}");
                if (m.TryGetProperty("tool_calls", out var calls))
                {
                    foreach (var c in calls.EnumerateArray())
                        expected.Add($"assistant tool_use {c.GetProperty("id").GetString()} {c.GetProperty("function").GetProperty("name").GetString()} {Meaning(c.GetProperty("function").GetProperty("arguments").GetString()!)}");
                }
            }
            var actual = new List<string>();
            foreach (var m in outbound.GetProperty("messages").EnumerateArray())
            {
                var role = m.GetProperty("role").GetString();
                var content = m.GetProperty("content");
                if (content.ValueKind == JsonValueKind.String)
                {
                    actual.Add($"{role} text {content.GetString()}");
                    continue;
                }
                foreach (var b in content.EnumerateArray())
                {
                    actual.Add(b.GetProperty("type").GetString() switch
                    {
                        "text" => $"{role} text {b.GetProperty("text").GetString()}",
                        "tool_use" => $"{role} tool_use {b.GetProperty("id").GetString()} {b.GetProperty("name").GetString()} {Meaning(b.GetProperty("input").GetRawText())}",
                        "tool_result" => $"{role} tool_result {b.GetProperty("tool_use_id").GetString()} {(b.TryGetProperty("content", out var rc) ? rc.GetString() : "")}",
                        var other => other!,
                    });
                }
            }
            Assert.Equal(expected, actual);

            var inTools = sent.GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("function")).ToDictionary(f => f.GetProperty("name").GetString()!);
            foreach (var t in outbound.GetProperty("tools").EnumerateArray())
            {
                var original = inTools[t.GetProperty("name").GetString()!];
                Assert.Equal(original.GetProperty("description").GetString(), t.GetProperty("description").GetString());
                Assert.True(JsonMeaning.Equal(original.GetProperty("parameters"), t.GetProperty("input_schema")));
            }
            Assert.Equal(inTools.Count, outbound.GetProperty("tools").GetArrayLength());
        }

        static string Meaning(string json) => Encoding.UTF8.GetString(CanonicalJson.ToBytes(JsonDocument.Parse(json).RootElement));
    }

    // ---- a growing conversation keeps its prefix ---------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(AllTargets))]
    public void Replaying_a_session_turn_by_turn_keeps_every_earlier_prompt_block_byte_identical(ProviderKind target)
    {
        var rng = new Random(6);
        foreach (var session in AgentSessions.Sample(tauBench: 4, toolBench: 4))
        {
            var harness = new PipelineHarness();
            List<string>? previous = null;
            var turn = 0;
            foreach (var request in session.OpenAIRequests())
            {
                // Each turn from a differently formatted client, as when several programs share a conversation.
                var blocks = PromptBlocks(harness.Run(new ClientVariant(rng).Render(request), ApiFormat.OpenAI, target).Json, target);
                if (previous is not null)
                {
                    Assert.True(blocks.Count >= previous.Count, $"{session.Id} turn {turn}");
                    for (var i = 0; i < previous.Count; i++)
                        Assert.True(previous[i] == blocks[i], $"{session.Id} turn {turn}: block {i} changed\nwas: {previous[i]}\nnow: {blocks[i]}");
                }
                previous = blocks;
                turn++;
            }
        }
    }

    /// <summary>The prompt as the provider caches it, one entry per block: tools, system, then messages (cache_control removed).</summary>
    private static List<string> PromptBlocks(JsonElement body, ProviderKind target)
    {
        var node = JsonNode.Parse(body.GetRawText())!.AsObject();
        StripCacheControl(node);
        var blocks = new List<string>();
        if (node["tools"] is JsonArray tools) blocks.AddRange(tools.Select(t => "tool " + t!.ToJsonString()));
        if (target != ProviderKind.Anthropic)
        {
            blocks.AddRange(node["messages"]!.AsArray().Select(m => "message " + m!.ToJsonString()));
            return blocks;
        }
        switch (node["system"])
        {
            case JsonValue s: blocks.Add("system " + new JsonObject { ["type"] = "text", ["text"] = (string)s! }.ToJsonString()); break;
            case JsonArray a: blocks.AddRange(a.Select(b => "system " + b!.ToJsonString())); break;
        }
        foreach (var m in node["messages"]!.AsArray())
        {
            var role = (string)m!["role"]!;
            if (m["content"] is JsonValue text) blocks.Add(role + " " + new JsonObject { ["type"] = "text", ["text"] = (string)text! }.ToJsonString());
            else blocks.AddRange(m["content"]!.AsArray().Select(b => role + " " + b!.ToJsonString()));
        }
        return blocks;

        static void StripCacheControl(JsonNode? n)
        {
            switch (n)
            {
                case JsonObject o:
                    o.Remove("cache_control");
                    foreach (var (_, v) in o.ToList()) StripCacheControl(v);
                    break;
                case JsonArray a:
                    foreach (var v in a) StripCacheControl(v);
                    break;
            }
        }
    }

    // ---- golden outbound requests ------------------------------------------------------------------------------------

    private const string GoldenRequest = """
        {
          "model": "gpt-4o",
          "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
              {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"unit\": \"c\", \"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}
          ],
          "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city.",
              "parameters": {"type": "object", "properties": {"unit": {"type": "string", "enum": ["c", "f"]}, "city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "find_city", "description": "Look up a city by name.",
              "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1.0}}, "required": ["query"]}}}
          ],
          "temperature": 0.2,
          "max_tokens": 200
        }
        """;

    private const string GoldenTools = """
        [{"type":"function","function":{"name":"find_city","description":"Look up a city by name.","parameters":{"properties":{"limit":{"minimum":1,"type":"integer"},"query":{"type":"string"}},"required":["query"],"type":"object"}}},
         {"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"properties":{"city":{"type":"string"},"unit":{"enum":["c","f"],"type":"string"}},"required":["city"],"type":"object"}}}]
        """;

    private const string GoldenMessages = """
        [{"role":"system","content":"You are a weather bot."},
         {"role":"user","content":"Weather in Paris?"},
         {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
         {"role":"tool","content":"18C and sunny","tool_call_id":"call_1"}]
        """;

    [Fact]
    public void Golden_OpenAI_request_with_two_tools_and_a_tool_round_trip()
    {
        var outbound = new PipelineHarness().Run(GoldenRequest, ApiFormat.OpenAI, ProviderKind.OpenAI, scope: "tenant-a");

        var key = CacheInjector.PromptCacheKey("tenant-a", outbound.PrefixHash);
        Assert.Equal(JsonMeaning.Compact($$"""
            {"model":"gpt-4o-2024-08-06","messages":{{GoldenMessages}},"tools":{{GoldenTools}},
             "max_tokens":200,"temperature":0.2,"prompt_cache_key":"{{key}}"}
            """), outbound.Body);
    }

    [Fact]
    public void Golden_DeepSeek_request_with_two_tools_and_a_tool_round_trip()
    {
        var outbound = new PipelineHarness().Run(GoldenRequest, ApiFormat.OpenAI, ProviderKind.DeepSeek);

        Assert.Equal(JsonMeaning.Compact($$"""
            {"model":"deepseek-chat","messages":{{GoldenMessages}},"tools":{{GoldenTools}},"max_tokens":200,"temperature":0.2}
            """), outbound.Body);
    }

    [Fact]
    public void Golden_Anthropic_request_with_two_tools_and_a_tool_round_trip()
    {
        var outbound = new PipelineHarness().Run(GoldenRequest, ApiFormat.OpenAI, ProviderKind.Anthropic);

        Assert.Equal(JsonMeaning.Compact("""
            {"model":"claude-sonnet-4-5","max_tokens":200,
             "system":[{"type":"text","text":"You are a weather bot.","cache_control":{"type":"ephemeral"}}],
             "tools":[
              {"name":"find_city","description":"Look up a city by name.","input_schema":{"properties":{"limit":{"minimum":1,"type":"integer"},"query":{"type":"string"}},"required":["query"],"type":"object"}},
              {"name":"get_weather","description":"Current weather for a city.","input_schema":{"properties":{"city":{"type":"string"},"unit":{"enum":["c","f"],"type":"string"}},"required":["city"],"type":"object"},"cache_control":{"type":"ephemeral"}}],
             "messages":[
              {"role":"user","content":"Weather in Paris?"},
              {"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris","unit":"c"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C and sunny","cache_control":{"type":"ephemeral"}}]}],
             "temperature":0.2}
            """), outbound.Body);
    }

    // ---- helpers -----------------------------------------------------------------------------------------------------

    private static void AssertSame(Outbound expected, Outbound actual, string context)
    {
        if (expected.Body != actual.Body)
        {
            var i = 0;
            while (i < Math.Min(expected.Body.Length, actual.Body.Length) && expected.Body[i] == actual.Body[i]) i++;
            var from = Math.Max(0, i - 120);
            Assert.Fail($"outbound bytes differ at {i} ({context[..Math.Min(context.Length, 600)]})\nexpected …{expected.Body[from..Math.Min(expected.Body.Length, i + 120)]}\nactual   …{actual.Body[from..Math.Min(actual.Body.Length, i + 120)]}");
        }
        Assert.Equal(expected.PrefixHash, actual.PrefixHash);
        Assert.Equal(expected.FullHash, actual.FullHash);
    }

    private static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
