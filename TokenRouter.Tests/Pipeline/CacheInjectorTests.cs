using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Pipeline;

public sealed partial class CacheInjectorTests
{
    private const string OpenAIConversation = """
        {"model":"gpt-4o","messages":[
         {"role":"system","content":"You are an airline agent."},
         {"role":"user","content":"Change my flight."},
         {"role":"assistant","content":"Which reservation?"},
         {"role":"user","content":"X1, please."}],
         "tools":[
          {"type":"function","function":{"name":"get_reservation","description":"Get one.","parameters":{"type":"object","properties":{"id":{"type":"string"}}}}},
          {"type":"function","function":{"name":"cancel","description":"Cancel.","parameters":{"type":"object","properties":{}}}}]}
        """;

    private const string AnthropicConversation = """
        {"model":"claude","max_tokens":100,"system":"You are an airline agent.","messages":[
         {"role":"user","content":"Change my flight."},
         {"role":"assistant","content":"Which reservation?"},
         {"role":"user","content":"X1, please."}],
         "tools":[
          {"name":"get_reservation","description":"Get one.","input_schema":{"type":"object","properties":{"id":{"type":"string"}}}},
          {"name":"cancel","description":"Cancel.","input_schema":{"type":"object","properties":{}}}]}
        """;

    private static List<(string At, string Ttl)> Breakpoints(Outbound outbound)
    {
        var json = outbound.Json;
        var found = AnthropicBreakpoints.InPromptOrder(json);
        Assert.Equal(AnthropicBreakpoints.CountAnywhere(json), found.Count); // none hides outside tools/system/messages
        return found;
    }

    [Theory]
    [InlineData(ApiFormat.OpenAI, OpenAIConversation)]
    [InlineData(ApiFormat.Anthropic, AnthropicConversation)]
    public void Without_client_breakpoints_they_land_after_tools_after_system_at_the_end_of_history_and_on_the_last_message(ApiFormat format, string body)
    {
        var outbound = new PipelineHarness().Run(body, format, ProviderKind.Anthropic);

        // Tools are arranged in name order (cancel, get_reservation): the last one carries the tools breakpoint.
        Assert.Equal(
            [("tools.1", "5m"), ("system.0", "5m"), ("messages.1.content.0", "5m"), ("messages.2.content.0", "5m")],
            Breakpoints(outbound));
        Assert.Equal("get_reservation", outbound.Json.GetProperty("tools")[1].GetProperty("name").GetString());
    }

    [Theory]
    [InlineData("5m", new[] { "5m", "5m", "5m", "5m" })]
    [InlineData("1h", new[] { "1h", "1h", "1h", "1h" })]
    [InlineData("mixed", new[] { "1h", "1h", "5m", "5m" })]
    public void The_TTL_policy_sets_prefix_and_turn_breakpoints(string policy, string[] expected)
    {
        var outbound = new PipelineHarness(o => o.AnthropicCacheTtl = policy).Run(OpenAIConversation, ApiFormat.OpenAI, ProviderKind.Anthropic);
        Assert.Equal(expected, Breakpoints(outbound).Select(b => b.Ttl));
    }

    [Fact]
    public void Client_breakpoints_are_kept_and_free_slots_are_filled()
    {
        var outbound = new PipelineHarness().Run("""
            {"model":"claude","max_tokens":100,
             "system":[{"type":"text","text":"Policy","cache_control":{"type":"ephemeral"}}],
             "messages":[
              {"role":"user","content":[{"type":"text","text":"Long document","cache_control":{"type":"ephemeral","ttl":"5m"}},{"type":"text","text":"Summarize."}]},
              {"role":"assistant","content":"Summary."},
              {"role":"user","content":"Shorter."}],
             "tools":[{"name":"t","input_schema":{"type":"object"}}]}
            """, ApiFormat.Anthropic, ProviderKind.Anthropic);

        Assert.Equal(
            [("tools.0", "5m"), ("system.0", "5m"), ("messages.0.content.0", "5m"), ("messages.2.content.0", "5m")],
            Breakpoints(outbound));
    }

    [Fact]
    public void A_client_one_hour_breakpoint_is_not_shortened_by_a_breakpoint_the_gateway_adds()
    {
        // The client caches its system prompt (and the tools before it) for an hour. The gateway's own 5m mark after
        // the tools would come first in prompt order and force the client's 1h down to 5m: the injected mark must
        // take the longer TTL instead.
        var outbound = new PipelineHarness().Run("""
            {"model":"claude","max_tokens":100,
             "system":[{"type":"text","text":"Policy","cache_control":{"type":"ephemeral","ttl":"1h"}}],
             "messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."},{"role":"user","content":"Book."}],
             "tools":[{"name":"t","input_schema":{"type":"object"}}]}
            """, ApiFormat.Anthropic, ProviderKind.Anthropic);

        var breakpoints = Breakpoints(outbound);
        Assert.Contains(("system.0", "1h"), breakpoints);
        AssertTtlOrder(breakpoints, "client 1h on system");
    }

    [Fact]
    public void Six_client_breakpoints_are_cut_to_the_last_four_in_prompt_order()
    {
        var outbound = new PipelineHarness().Run("""
            {"model":"claude","max_tokens":100,
             "system":[{"type":"text","text":"S1","cache_control":{"type":"ephemeral"}},{"type":"text","text":"S2","cache_control":{"type":"ephemeral"}}],
             "messages":[
              {"role":"user","content":[{"type":"text","text":"u1","cache_control":{"type":"ephemeral"}}]},
              {"role":"assistant","content":[{"type":"text","text":"a1","cache_control":{"type":"ephemeral"}}]},
              {"role":"user","content":[{"type":"text","text":"u2","cache_control":{"type":"ephemeral"}}]}],
             "tools":[{"name":"t","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}]}
            """, ApiFormat.Anthropic, ProviderKind.Anthropic);

        Assert.Equal(["system.1", "messages.0.content.0", "messages.1.content.0", "messages.2.content.0"], Breakpoints(outbound).Select(b => b.At));
    }

    /// <summary>Every place an Anthropic client may put <c>cache_control</c>, with its location in the written request.</summary>
    private static readonly string[] AnthropicSlots =
    [
        "tools.0", "tools.1", "tools.2", "system.0", "system.1",
        "messages.0.content.0", "messages.0.content.1", "messages.1.content.0", "messages.1.content.1",
        "messages.2.content.0.content.0", "messages.2.content.0", "messages.3.content.0", "messages.4.content.0",
    ];

    private static string AnthropicFuzzBody(IReadOnlyDictionary<string, string?> marks)
    {
        JsonObject Mark(JsonObject o, string at)
        {
            if (marks.TryGetValue(at, out var ttl))
            {
                var cc = new JsonObject { ["type"] = "ephemeral" };
                if (ttl is not null) cc["ttl"] = ttl;
                o["cache_control"] = cc;
            }
            return o;
        }
        JsonObject Text(string text, string at) => Mark(new JsonObject { ["type"] = "text", ["text"] = text }, at);
        JsonObject Tool(string name, string at) => Mark(new JsonObject { ["name"] = name, ["description"] = "Tool " + name, ["input_schema"] = new JsonObject { ["type"] = "object" } }, at);

        return new JsonObject
        {
            ["model"] = "claude",
            ["max_tokens"] = 100,
            ["system"] = new JsonArray(Text("Policy part 1", "system.0"), Text("Policy part 2", "system.1")),
            ["tools"] = new JsonArray(Tool("a_tool", "tools.0"), Tool("b_tool", "tools.1"), Tool("c_tool", "tools.2")),
            ["messages"] = new JsonArray(
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(
                        Text("Look at this.", "messages.0.content.0"),
                        Mark(new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = "image/png", ["data"] = "iVBORw0KGgo=" } }, "messages.0.content.1")),
                },
                new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = new JsonArray(
                        Text("Checking.", "messages.1.content.0"),
                        Mark(new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_1", ["name"] = "a_tool", ["input"] = new JsonObject { ["q"] = 1 } }, "messages.1.content.1")),
                },
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(Mark(new JsonObject
                    {
                        ["type"] = "tool_result",
                        ["tool_use_id"] = "toolu_1",
                        ["content"] = new JsonArray(Text("result", "messages.2.content.0.content.0")),
                    }, "messages.2.content.0")),
                },
                new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(Text("It is a cat.", "messages.3.content.0")) },
                new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Text("Thanks!", "messages.4.content.0")) }),
        }.ToJsonString();
    }

    private static void AssertTtlOrder(List<(string At, string Ttl)> breakpoints, string context)
    {
        var seenShort = false;
        foreach (var (at, ttl) in breakpoints)
        {
            Assert.False(seenShort && ttl == "1h", $"a 1h breakpoint at {at} follows a 5m one ({context})");
            seenShort |= ttl == "5m";
        }
    }

    [Theory]
    [InlineData("5m")]
    [InlineData("1h")]
    [InlineData("mixed")]
    public void Whatever_an_Anthropic_client_marks_the_request_has_at_most_four_breakpoints_in_valid_TTL_order(string policy)
    {
        var rng = new Random(policy switch { "5m" => 1, "1h" => 2, _ => 3 });
        var harness = new PipelineHarness(o => o.AnthropicCacheTtl = policy);
        string?[] ttls = [null, "5m", "1h"];
        for (var run = 0; run < 200; run++)
        {
            var count = run < 20 ? 6 : rng.Next(0, AnthropicSlots.Length + 1);
            var marks = AnthropicSlots.OrderBy(_ => rng.Next()).Take(count).ToDictionary(s => s, _ => ttls[rng.Next(ttls.Length)]);
            var context = $"policy {policy}, client marks: {string.Join(", ", marks.Select(m => $"{m.Key}={m.Value ?? "default"}"))}";

            var breakpoints = Breakpoints(harness.Run(AnthropicFuzzBody(marks), ApiFormat.Anthropic, ProviderKind.Anthropic));

            Assert.True(breakpoints.Count <= 4, $"{breakpoints.Count} breakpoints ({context})");
            AssertTtlOrder(breakpoints, context);
            if (count <= 4)
            {
                foreach (var at in marks.Keys) Assert.Contains(at, breakpoints.Select(b => b.At));
                // When the client's own TTLs are in a valid order, each keeps its TTL (added marks adapt to them).
                var clientOrder = AnthropicSlots.Where(marks.ContainsKey).Select(at => marks[at] ?? "5m").ToList();
                var clientValid = !clientOrder.SkipWhile(t => t == "1h").Contains("1h");
                if (clientValid)
                {
                    foreach (var (at, ttl) in marks) Assert.Contains((at, ttl ?? "5m"), breakpoints);
                }
            }
            if (count >= 4) Assert.Equal(4, breakpoints.Count);
            if (count == 0)
                Assert.Equal(["tools.2", "system.1", "messages.3.content.0", "messages.4.content.0"], breakpoints.Select(b => b.At));
        }
    }

    [Theory]
    [InlineData("5m")]
    [InlineData("1h")]
    [InlineData("mixed")]
    public void Whatever_an_OpenAI_client_marks_the_Anthropic_request_has_at_most_four_breakpoints_in_valid_TTL_order(string policy)
    {
        var rng = new Random(17 + policy.Length);
        var harness = new PipelineHarness(o => o.AnthropicCacheTtl = policy);
        string[] slots = ["tool.0", "tool.1", "tool.2", "system.0", "system.1", "user.0", "user.1", "last.0", "last.1"];
        string?[] ttls = [null, "5m", "1h"];
        for (var run = 0; run < 150; run++)
        {
            var count = run < 20 ? 6 : rng.Next(0, slots.Length + 1);
            var marks = slots.OrderBy(_ => rng.Next()).Take(count).ToDictionary(s => s, _ => ttls[rng.Next(ttls.Length)]);
            string Cc(string slot) => !marks.TryGetValue(slot, out var ttl) ? ""
                : ttl is null ? ",\"cache_control\":{\"type\":\"ephemeral\"}"
                : ",\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"" + ttl + "\"}";
            string Tool(string name, int i) =>
                "{\"type\":\"function\",\"function\":{\"name\":\"" + name + "\",\"parameters\":{\"type\":\"object\"}}" + Cc($"tool.{i}") + "}";
            string Text(string text, string slot) => "{\"type\":\"text\",\"text\":\"" + text + "\"" + Cc(slot) + "}";
            string Parts(string prefix, string a, string b) => "[" + Text(a, prefix + ".0") + "," + Text(b, prefix + ".1") + "]";
            var body = $$$"""
                {"model":"gpt-4o","messages":[
                 {"role":"system","content":{{{Parts("system", "Policy 1", "Policy 2")}}}},
                 {"role":"user","content":{{{Parts("user", "Doc", "Question")}}}},
                 {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{}"}}]},
                 {"role":"tool","tool_call_id":"call_1","content":"result"},
                 {"role":"assistant","content":"Answer"},
                 {"role":"user","content":{{{Parts("last", "More", "Please")}}}}],
                 "tools":[{{{Tool("a", 0)}}},{{{Tool("b", 1)}}},{{{Tool("c", 2)}}}]}
                """;
            var context = $"policy {policy}, client marks: {string.Join(", ", marks.Keys)}";

            var breakpoints = Breakpoints(harness.Run(body, ApiFormat.OpenAI, ProviderKind.Anthropic));

            Assert.True(breakpoints.Count <= 4, $"{breakpoints.Count} breakpoints ({context})");
            AssertTtlOrder(breakpoints, context);
            if (count <= 4) Assert.True(breakpoints.Count >= count, $"client breakpoints lost ({context})");
        }
    }

    [Fact]
    public void The_tools_breakpoint_lands_on_a_tool_the_Anthropic_target_receives()
    {
        // An OpenAI client's non-function tool ("custom") sorts last but is not sent to Anthropic:
        // the breakpoint after the tools must go on the last tool that is written.
        var outbound = new PipelineHarness().Run("""
            {"model":"gpt-4o","messages":[{"role":"system","content":"S"},{"role":"user","content":"hi"}],
             "tools":[{"type":"custom","custom":{"name":"grammar_tool"}},
                      {"type":"function","function":{"name":"add_note","parameters":{"type":"object"}}}]}
            """, ApiFormat.OpenAI, ProviderKind.Anthropic);

        Assert.Contains(("tools.0", "5m"), Breakpoints(outbound));
    }

    [Fact]
    public void OpenAI_gets_a_prompt_cache_key_derived_from_prefix_and_scope_when_the_client_sent_none()
    {
        var outbound = new PipelineHarness().Run(OpenAIConversation, ApiFormat.OpenAI, ProviderKind.OpenAI, scope: "tenant-a");
        var key = outbound.Json.GetProperty("prompt_cache_key").GetString()!;

        Assert.True(key.Length <= CacheInjector.MaxPromptCacheKeyLength);
        Assert.Matches(PromptCacheKeyShape(), key);
        Assert.Equal(CacheInjector.PromptCacheKey("tenant-a", outbound.PrefixHash), key);
    }

    [Fact]
    public void The_prompt_cache_key_is_stable_for_the_same_prefix_and_scope_and_differs_across_scopes_and_prefixes()
    {
        var harness = new PipelineHarness();
        var session = AgentSessions.All.First(s => !s.IsToolBench && s.Turns.Count >= 6);
        var requests = session.OpenAIRequests().Take(4).Select(r => r.ToJsonString()).ToList();
        var other = AgentSessions.All.First(s => !s.IsToolBench && s.Id != session.Id).OpenAIRequests().First().ToJsonString();
        string Key(string body, string scope) => harness.Run(body, ApiFormat.OpenAI, ProviderKind.OpenAI, scope).Json.GetProperty("prompt_cache_key").GetString()!;

        // Every turn of the conversation, and another conversation with the same system and tools, share the key.
        var keyA = Key(requests[0], "tenant-a");
        foreach (var r in requests.Skip(1)) Assert.Equal(keyA, Key(r, "tenant-a"));
        Assert.Equal(keyA, Key(other, "tenant-a"));

        Assert.NotEqual(keyA, Key(requests[0], "tenant-b"));
        var otherPrefix = JsonNode.Parse(requests[0])!;
        otherPrefix["messages"]![0]!["content"] = "A different system prompt.";
        Assert.NotEqual(keyA, Key(otherPrefix.ToJsonString(), "tenant-a"));
    }

    [Fact]
    public void A_scope_sending_its_prefix_again_gets_the_same_key_string_and_another_scope_its_own()
    {
        var prefix = Hasher.ComputeFullHash("a prefix"u8, "openai", "test"); // any 32 hex digits
        var key = CacheInjector.PromptCacheKey("tenant-a", prefix);

        Assert.Same(key, CacheInjector.PromptCacheKey("tenant-a", prefix));
        Assert.Same(key, CacheInjector.PromptCacheKey(new string("tenant-a".AsSpan()), new string(prefix.AsSpan())));
        Assert.NotEqual(key, CacheInjector.PromptCacheKey("tenant-b", prefix));
        Assert.Equal(key, CacheInjector.PromptCacheKey("tenant-a", prefix)); // after tenant-b's: each scope keeps its own
    }

    [Fact]
    public void Prompt_cache_keys_are_at_most_64_chars_for_any_scope()
    {
        var rng = new Random(5);
        for (var i = 0; i < 200; i++)
        {
            var scope = new string([.. Enumerable.Range(0, rng.Next(0, 300)).Select(_ => (char)rng.Next(32, 0xD7FF))]);
            var prefix = string.Concat(Enumerable.Range(0, rng.Next(1, 80)).Select(_ => "0123456789abcdef"[rng.Next(16)]));
            var key = CacheInjector.PromptCacheKey(scope, prefix);
            Assert.True(key.Length <= CacheInjector.MaxPromptCacheKeyLength, key);
            Assert.Equal(key, CacheInjector.PromptCacheKey(scope, prefix));
        }
    }

    [Fact]
    public void The_client_prompt_cache_key_is_kept()
    {
        var body = JsonNode.Parse(OpenAIConversation)!;
        body["prompt_cache_key"] = "my-own-key";
        var outbound = new PipelineHarness().Run(body.ToJsonString(), ApiFormat.OpenAI, ProviderKind.OpenAI);
        Assert.Equal("my-own-key", outbound.Json.GetProperty("prompt_cache_key").GetString());
    }

    [Fact]
    public void DeepSeek_gets_no_cache_directives()
    {
        var body = JsonNode.Parse(OpenAIConversation)!;
        body["prompt_cache_key"] = "my-own-key";
        body["messages"]![3]!["content"] = JsonNode.Parse("""[{"type":"text","text":"X1, please.","cache_control":{"type":"ephemeral"}}]""");
        var outbound = new PipelineHarness().Run(body.ToJsonString(), ApiFormat.OpenAI, ProviderKind.DeepSeek);

        Assert.DoesNotContain("prompt_cache_key", outbound.Body, StringComparison.Ordinal);
        Assert.DoesNotContain("cache_control", outbound.Body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ApiFormat.OpenAI, OpenAIConversation)]
    [InlineData(ApiFormat.Anthropic, AnthropicConversation)]
    public void With_cache_inject_off_nothing_is_injected(ApiFormat format, string body)
    {
        var harness = new PipelineHarness(o => o.CacheInjectEnabled = false);
        foreach (var target in Targets.All)
        {
            var outbound = harness.Run(body, format, target);
            Assert.DoesNotContain("prompt_cache_key", outbound.Body, StringComparison.Ordinal);
            Assert.DoesNotContain("cache_control", outbound.Body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void With_cache_inject_off_the_client_directives_still_pass()
    {
        var harness = new PipelineHarness(o => o.CacheInjectEnabled = false);
        var openAI = JsonNode.Parse(OpenAIConversation)!;
        openAI["prompt_cache_key"] = "mine";
        Assert.Equal("mine", harness.Run(openAI.ToJsonString(), ApiFormat.OpenAI, ProviderKind.OpenAI).Json.GetProperty("prompt_cache_key").GetString());

        var anthropic = AnthropicConversation.Replace("\"You are an airline agent.\"", """[{"type":"text","text":"You are an airline agent.","cache_control":{"type":"ephemeral","ttl":"1h"}}]""", StringComparison.Ordinal);
        Assert.Equal([("system.0", "1h")], Breakpoints(harness.Run(anthropic, ApiFormat.Anthropic, ProviderKind.Anthropic)));
    }

    [GeneratedRegex("^tr-[0-9a-f]{32}-[0-9a-f]{16}$")]
    private static partial Regex PromptCacheKeyShape();
}
