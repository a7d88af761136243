using System.Text.Json.Nodes;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Pipeline;

public sealed class ArrangerTests
{
    private readonly ManualTime _time = new();
    private readonly ToolOrderMemory _memory;
    private readonly Arranger _arranger;

    public ArrangerTests()
    {
        _memory = new ToolOrderMemory(_time) { Ttl = TimeSpan.FromHours(1) };
        _arranger = new Arranger(_memory);
    }

    /// <summary>An OpenAI request of one conversation: its root is the system prompt and the first user turn.</summary>
    private static string Request(IEnumerable<string> tools, string system = "You are an airline agent.", string firstUser = "I want to change my flight.", int laterTurns = 0)
    {
        var messages = new JsonArray
        {
            new JsonObject { ["role"] = "system", ["content"] = system },
            new JsonObject { ["role"] = "user", ["content"] = firstUser },
        };
        for (var i = 0; i < laterTurns; i++)
        {
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = $"answer {i}" });
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = $"follow-up {i}" });
        }
        var toolArray = new JsonArray();
        foreach (var name in tools)
        {
            toolArray.Add(new JsonObject
            {
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = name,
                    ["description"] = "Tool " + name,
                    ["parameters"] = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() },
                },
            });
        }
        return new JsonObject { ["model"] = "gpt-4o", ["messages"] = messages, ["tools"] = toolArray }.ToJsonString();
    }

    private string[] Arrange(string body, string scope = "tenant-a")
    {
        using var envelope = PipelineHarness.Parse(body, ApiFormat.OpenAI);
        Chunker.Chunk(envelope);
        _arranger.Arrange(envelope, scope);
        return [.. envelope.Tools.Select(t => t.Name)];
    }

    [Fact]
    public void A_conversation_seen_for_the_first_time_gets_tools_in_ordinal_name_order()
    {
        Assert.Equal(["Alpha", "_x", "alpha", "beta", "zeta"], Arrange(Request(["zeta", "alpha", "beta", "_x", "Alpha"])));
    }

    [Fact]
    public void The_same_conversation_in_a_later_turn_keeps_its_order_and_appends_a_new_tool()
    {
        Assert.Equal(["beta", "delta", "zeta"], Arrange(Request(["zeta", "beta", "delta"])));

        // The client now sorts its tools itself and adds "alpha": it must not land in the middle (or at the front).
        Assert.Equal(["beta", "delta", "zeta", "alpha"], Arrange(Request(["alpha", "beta", "delta", "zeta"], laterTurns: 2)));
        Assert.Equal(["beta", "delta", "zeta", "alpha", "gamma"], Arrange(Request(["gamma", "zeta", "alpha", "delta", "beta"], laterTurns: 3)));
    }

    [Fact]
    public void The_same_conversation_sent_with_tools_in_another_order_gets_its_remembered_order()
    {
        Assert.Equal(["a", "b", "c"], Arrange(Request(["b", "c", "a"])));
        Assert.Equal(["a", "b", "c"], Arrange(Request(["c", "a", "b"], laterTurns: 1)));
        Assert.Equal(["a", "b", "c"], Arrange(Request(["c", "b", "a"], laterTurns: 2)));
    }

    [Fact]
    public void Several_new_tools_added_at_once_are_appended_in_name_order()
    {
        Assert.Equal(["m", "n"], Arrange(Request(["n", "m"])));
        Assert.Equal(["m", "n", "a", "z"], Arrange(Request(["z", "n", "a", "m"], laterTurns: 1)));
    }

    [Fact]
    public void A_tool_dropped_for_a_turn_gets_its_old_slot_back_when_it_returns()
    {
        Assert.Equal(["a", "b", "c"], Arrange(Request(["a", "b", "c"])));
        Assert.Equal(["a", "c", "d"], Arrange(Request(["d", "c", "a"], laterTurns: 1)));
        Assert.Equal(["a", "b", "c", "d"], Arrange(Request(["d", "c", "b", "a"], laterTurns: 2)));
    }

    [Fact]
    public void A_conversation_that_starts_with_one_tool_keeps_it_first_when_a_tool_is_added()
    {
        // Turn 1 was sent with [zeta] and cached; turn 2 adds "alpha". Sorting now would put alpha in front of
        // zeta and invalidate the whole cached prefix: the trap DESIGN.md describes, with a one-tool start.
        Assert.Equal(["zeta"], Arrange(Request(["zeta"])));
        Assert.Equal(["zeta", "alpha"], Arrange(Request(["alpha", "zeta"], laterTurns: 1)));
    }

    [Fact]
    public void Another_tenant_with_the_same_conversation_does_not_share_the_memory()
    {
        Assert.Equal(["beta", "zeta"], Arrange(Request(["zeta", "beta"]), scope: "tenant-a"));

        Assert.Equal(["alpha", "beta", "zeta"], Arrange(Request(["zeta", "alpha", "beta"], laterTurns: 1), scope: "tenant-b"));
        Assert.Equal(["beta", "zeta", "alpha"], Arrange(Request(["zeta", "alpha", "beta"], laterTurns: 1), scope: "tenant-a"));
    }

    [Fact]
    public void Another_first_user_turn_is_another_conversation()
    {
        Assert.Equal(["beta", "zeta"], Arrange(Request(["zeta", "beta"], firstUser: "Cancel my booking.")));
        Assert.Equal(["alpha", "beta", "zeta"], Arrange(Request(["zeta", "alpha", "beta"], firstUser: "Book a flight.")));
    }

    [Fact]
    public void Another_system_prompt_is_another_conversation()
    {
        Assert.Equal(["beta", "zeta"], Arrange(Request(["zeta", "beta"], system: "Policy v1")));
        Assert.Equal(["alpha", "beta", "zeta"], Arrange(Request(["zeta", "alpha", "beta"], system: "Policy v2")));
    }

    [Fact]
    public void A_remembered_order_expires_with_the_provider_cache()
    {
        Assert.Equal(["beta", "zeta"], Arrange(Request(["zeta", "beta"])));
        _time.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal(["beta", "zeta", "alpha"], Arrange(Request(["alpha", "zeta", "beta"], laterTurns: 1)));

        // Each use refreshes the entry; an hour of silence forgets it, and name order applies again.
        _time.Advance(TimeSpan.FromMinutes(61));
        Assert.Equal(["alpha", "beta", "zeta"], Arrange(Request(["zeta", "alpha", "beta"], laterTurns: 2)));
    }

    [Fact]
    public void An_Anthropic_conversation_is_identified_by_its_top_level_system_and_first_turn()
    {
        string Body(string tools, string firstUser) => $$"""
            {"model":"claude","max_tokens":10,"system":"Be an agent.","messages":[{"role":"user","content":"{{firstUser}}"}],
             "tools":[{{tools}}]}
            """;
        static string Tool(string name) => "{\"name\":\"" + name + "\",\"input_schema\":{\"type\":\"object\"}}";
        string[] Run(string body)
        {
            using var envelope = PipelineHarness.Parse(body, ApiFormat.Anthropic);
            _arranger.Arrange(envelope, "tenant-a");
            return [.. envelope.Tools.Select(t => t.Name)];
        }

        Assert.Equal(["b", "c"], Run(Body($"{Tool("c")},{Tool("b")}", "hi")));
        Assert.Equal(["b", "c", "a"], Run(Body($"{Tool("a")},{Tool("b")},{Tool("c")}", "hi")));
        Assert.Equal(["a", "b", "c"], Run(Body($"{Tool("c")},{Tool("a")},{Tool("b")}", "another conversation")));
    }

    [Fact]
    public void Arranging_never_reorders_messages()
    {
        using var envelope = PipelineHarness.Parse(Request(["z", "a"], laterTurns: 3), ApiFormat.OpenAI);
        var before = envelope.Messages.ToList();
        _arranger.Arrange(envelope, "tenant-a");
        Assert.Equal(before, envelope.Messages);
    }

    [Fact]
    public void With_tool_sort_off_the_client_order_is_untouched_and_nothing_is_remembered()
    {
        var harness = new PipelineHarness(o => o.ToolSortEnabled = false);
        foreach (var target in Targets.All)
        {
            var first = harness.Run(Request(["zeta", "alpha", "mid"]), ApiFormat.OpenAI, target);
            Assert.Equal(["zeta", "alpha", "mid"], ToolNames(first, target));
            var later = harness.Run(Request(["mid", "zeta", "beta", "alpha"], laterTurns: 1), ApiFormat.OpenAI, target);
            Assert.Equal(["mid", "zeta", "beta", "alpha"], ToolNames(later, target));
        }
        Assert.Equal(0, harness.Memory.Count);
    }

    [Fact]
    public void A_real_session_that_gains_a_tool_keeps_its_earlier_tools_as_a_byte_identical_prefix()
    {
        var session = AgentSessions.All.First(s => !s.IsToolBench && s.Turns.Count >= 8);
        Assert.DoesNotContain("add_note", session.Tools.Select(t => (string?)t!["function"]!["name"]));
        var requests = session.OpenAIRequests().Take(6).ToList();
        Assert.True(requests.Count >= 4, "the session is long enough");
        var harness = new PipelineHarness();
        var rng = new Random(7);
        string? previousTools = null;
        for (var turn = 0; turn < requests.Count; turn++)
        {
            var body = requests[turn];
            var tools = body["tools"]!.AsArray();
            // The first turns run without "add_note"; from turn 3 on the client sends it too, somewhere in its list.
            if (turn >= 3)
            {
                var added = new JsonObject
                {
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = "add_note", ["description"] = "Add a note to the reservation.", ["parameters"] = new JsonObject { ["type"] = "object" } },
                };
                tools.Insert(rng.Next(tools.Count + 1), added);
            }
            var outbound = harness.Run(new ClientVariant(rng).Render(body), ApiFormat.OpenAI, Targets.OpenAI);
            var toolsJson = outbound.Json.GetProperty("tools").GetRawText();
            if (previousTools is not null)
                Assert.StartsWith(previousTools.TrimEnd(']'), toolsJson);
            if (turn >= 3) Assert.Equal("add_note", ToolNames(outbound, Targets.OpenAI)[^1]);
            previousTools = toolsJson;
        }
    }

    internal static string[] ToolNames(Outbound outbound, RouteTarget target)
    {
        var tools = outbound.Json.GetProperty("tools").EnumerateArray();
        return target.Provider.Kind == ProviderKind.Anthropic
            ? [.. tools.Select(t => t.GetProperty("name").GetString()!)]
            : [.. tools.Select(t => t.GetProperty("function").GetProperty("name").GetString()!)];
    }
}
