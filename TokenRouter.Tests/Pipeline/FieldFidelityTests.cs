using System.Text.Json.Nodes;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Pipeline;

/// <summary>
/// Property tests of field fidelity: real recorded agent requests (tau-bench, ToolBench) get unknown fields at every
/// level — request, message, content part or block, tool call and its function, tool and its function (with BFCL's
/// <c>response</c> schema), tool result, tool_choice, stream_options — and must reach a provider of the client's own
/// format in place with equal values; with those fields taken out again, the upstream request equals the one the same
/// request without them produced (nothing else moved or changed).
/// </summary>
public sealed class FieldFidelityTests
{
    private const int Seeds = 3;

    public static IEnumerable<object[]> Sessions() =>
        AgentSessions.Sample(tauBench: 4, toolBench: 2).Select(s => new object[] { s.Id });

    [Theory]
    [MemberData(nameof(Sessions))]
    public void Unknown_fields_at_every_level_of_recorded_OpenAI_requests_reach_an_OpenAI_provider_in_place(string sessionId)
    {
        var session = AgentSessions.All.Single(s => s.Id == sessionId);
        foreach (var (turns, seed) in Requests(session))
        {
            var rng = new Random(seed);
            var baseline = FidelityRequests.OpenAIBaseline(session, turns, rng, allowStream: true);
            var injector = new UnknownFieldInjector(rng);
            var injected = FidelityRequests.InjectOpenAI(baseline, injector);
            var context = $"{sessionId} turns={turns} seed={seed}";

            var harness = new PipelineHarness();
            var plain = harness.Run(baseline.ToJsonString(), ApiFormat.OpenAI, ProviderKind.OpenAI);
            var rich = harness.Run(injected.ToJsonString(), ApiFormat.OpenAI, ProviderKind.OpenAI);

            var upstream = JsonNode.Parse(rich.Body)!;
            injector.AssertArrivedAndRemove(upstream, context);
            FidelityRequests.AssertSameApartFromCacheKey(JsonNode.Parse(plain.Body)!, upstream, context);
            // The tools' response schemas are read by the model: the shared prefix is a different one.
            Assert.NotEqual(plain.PrefixHash, rich.PrefixHash);
        }
    }

    [Theory]
    [MemberData(nameof(Sessions))]
    public void Unknown_fields_at_every_level_of_recorded_Anthropic_requests_reach_an_Anthropic_provider_in_place(string sessionId)
    {
        var session = AgentSessions.All.Single(s => s.Id == sessionId);
        foreach (var (turns, seed) in Requests(session))
        {
            var rng = new Random(seed);
            var baseline = FidelityRequests.AnthropicBaseline(session, turns, rng, allowStream: true);
            var injector = new UnknownFieldInjector(rng);
            var injected = FidelityRequests.InjectAnthropic(baseline, injector);
            var context = $"{sessionId} turns={turns} seed={seed}";

            var harness = new PipelineHarness();
            var plain = harness.Run(baseline.ToJsonString(), ApiFormat.Anthropic, ProviderKind.Anthropic);
            var rich = harness.Run(injected.ToJsonString(), ApiFormat.Anthropic, ProviderKind.Anthropic);

            var upstream = JsonNode.Parse(rich.Body)!;
            injector.AssertArrivedAndRemove(upstream, context);
            FidelityRequests.AssertSameApartFromCacheKey(JsonNode.Parse(plain.Body)!, upstream, context);
            Assert.NotEqual(plain.PrefixHash, rich.PrefixHash);
        }
    }

    [Fact]
    public void Requests_without_unknown_fields_keep_their_prefix_hash_and_bytes()
    {
        // A field that was absent stays absent: the same recorded request gives the same bytes and hashes as before.
        var session = AgentSessions.Sample(1, 0).Single();
        var body = session.OpenAIRequest(3).ToJsonString();
        var a = new PipelineHarness().Run(body, ApiFormat.OpenAI, ProviderKind.OpenAI);
        var b = new PipelineHarness().Run(body, ApiFormat.OpenAI, ProviderKind.OpenAI);
        Assert.Equal(a, b);
        Assert.DoesNotContain("response", a.Body, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenAI_cache_control_on_content_parts_and_tools_becomes_Anthropic_breakpoints()
    {
        const string body = """
            {"model":"gpt-4o","messages":[
              {"role":"system","content":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral","ttl":"1h"}}]},
              {"role":"user","content":[{"type":"text","text":"Long document…","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Summarize it."}]}],
             "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}},"cache_control":{"type":"ephemeral","ttl":"1h"}}]}
            """;
        var sent = JsonNode.Parse(new PipelineHarness(o => o.CacheInjectEnabled = false).Run(body, ApiFormat.OpenAI, ProviderKind.Anthropic).Body)!;

        Assert.Equal("1h", (string?)sent["tools"]![0]!["cache_control"]!["ttl"]);
        Assert.Equal("1h", (string?)sent["system"]![0]!["cache_control"]!["ttl"]);
        var blocks = sent["messages"]![0]!["content"]!.AsArray();
        Assert.Equal("ephemeral", (string?)blocks[0]!["cache_control"]!["type"]);
        Assert.Null(blocks[1]!["cache_control"]);
    }

    [Fact]
    public void Unknown_fields_are_dropped_only_across_formats_where_the_other_format_has_no_place()
    {
        // A BFCL tool's response schema and an OpenAI-only request field have no Anthropic counterpart: not sent there,
        // and the translated request is otherwise complete.
        const string body = """
            {"model":"gpt-4o","user":"end-user-7","logit_bias":{"50256":-100},"messages":[
              {"role":"user","content":[{"type":"text","text":"hi","x_hint":1}],"x_msg":true}],
             "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"response":{"type":"dict"}}}]}
            """;
        var sent = JsonNode.Parse(new PipelineHarness().Run(body, ApiFormat.OpenAI, ProviderKind.Anthropic).Body)!;

        Assert.Null(sent["logit_bias"]);
        Assert.Null(sent["tools"]![0]!["response"]);
        Assert.Null(sent["messages"]![0]!["x_msg"]);
        Assert.Null(sent["messages"]![0]!["content"]![0]!["x_hint"]);
        Assert.Equal("hi", (string?)sent["messages"]![0]!["content"]![0]!["text"]);
        Assert.Equal("end-user-7", (string?)sent["metadata"]!["user_id"]);
    }

    [Fact]
    public void Anthropic_metadata_user_id_becomes_the_OpenAI_user()
    {
        const string body = """
            {"model":"claude-sonnet-4-5","max_tokens":64,"metadata":{"user_id":"u-42"},"top_k":5,"messages":[{"role":"user","content":"hi"}]}
            """;
        var sent = JsonNode.Parse(new PipelineHarness().Run(body, ApiFormat.Anthropic, ProviderKind.OpenAI).Body)!;

        Assert.Equal("u-42", (string?)sent["user"]);
        Assert.Null(sent["metadata"]);
        Assert.Null(sent["top_k"]);
    }

    /// <summary>A few requests of the session (its second, middle and last model call), each with its own seed.</summary>
    private static IEnumerable<(int Turns, int Seed)> Requests(AgentSession session)
    {
        var calls = new List<int>();
        for (var k = 1; k < session.Turns.Count; k++)
            if ((string?)session.Turns[k]!["role"] == "assistant") calls.Add(k);
        var picks = new SortedSet<int> { calls[Math.Min(1, calls.Count - 1)], calls[calls.Count / 2], calls[^1] };
        var seed = session.Id.Aggregate(17, (h, c) => unchecked(h * 31 + c));
        var i = 0;
        foreach (var turns in picks.Take(Seeds)) yield return (turns, seed + i++);
    }
}

/// <summary>Builds the recorded requests in the shapes the fidelity tests need and injects unknown fields into them.</summary>
internal static class FidelityRequests
{
    /// <summary>A recorded OpenAI request, with some contents as part arrays (some parts with OpenAI-format cache_control),
    /// maybe streaming with stream_options and a forced tool_choice.</summary>
    public static JsonObject OpenAIBaseline(AgentSession session, int turns, Random rng, bool allowStream)
    {
        var req = session.OpenAIRequest(turns);
        foreach (var m in req["messages"]!.AsArray())
        {
            if ((string?)m!["role"] is "user" or "tool" or "system" && m["content"] is JsonValue c && rng.Next(2) == 0)
            {
                var part = new JsonObject { ["type"] = "text", ["text"] = (string?)c };
                if (rng.Next(3) == 0) part["cache_control"] = new JsonObject { ["type"] = "ephemeral" };
                m["content"] = new JsonArray(part);
            }
        }
        if (rng.Next(2) == 0 && req["messages"]!.AsArray().FirstOrDefault(m => (string?)m!["role"] == "user") is JsonObject firstUser)
        {
            // An image part (passed on whole to an OpenAI provider: `detail` decides what it costs).
            var parts = firstUser["content"] as JsonArray ?? new JsonArray(new JsonObject { ["type"] = "text", ["text"] = (string?)firstUser["content"] });
            parts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = "https://example.com/a.png", ["detail"] = "low" } });
            firstUser["content"] = parts;
        }
        if (allowStream && rng.Next(2) == 0)
        {
            req["stream"] = true;
            req["stream_options"] = new JsonObject { ["include_usage"] = rng.Next(2) == 0 };
        }
        if (req["tools"] is JsonArray { Count: > 0 } tools && rng.Next(2) == 0)
            req["tool_choice"] = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = tools[^1]!["function"]!["name"]!.DeepClone() } };
        return req;
    }

    public static JsonObject InjectOpenAI(JsonObject baseline, UnknownFieldInjector inject)
    {
        var req = baseline.DeepClone().AsObject();
        inject.Inject(req, "the request", r => r as JsonObject);
        var messages = req["messages"]!.AsArray();
        for (var i = 0; i < messages.Count; i++)
        {
            var at = i;
            var m = messages[i]!.AsObject();
            inject.Inject(m, $"messages[{at}]", r => UnknownFieldInjector.Path(r, "messages", at));
            if (m["content"] is JsonArray parts)
            {
                for (var j = 0; j < parts.Count; j++)
                {
                    var pj = j;
                    var part = parts[j]!.AsObject();
                    Func<JsonNode, JsonObject?> locate = r => UnknownFieldInjector.Path(r, "messages", at, "content", pj);
                    inject.Inject(part, $"messages[{at}].content[{pj}]", locate);
                    // OpenAI-format cache_control (OpenRouter and other OpenAI-compatible providers honour it).
                    if (!part.ContainsKey("cache_control") && j == parts.Count - 1)
                        inject.Add(part, $"messages[{at}].content[{pj}]", locate, "cache_control", new JsonObject { ["type"] = "ephemeral", ["ttl"] = "1h" });
                }
            }
            if (m["tool_calls"] is JsonArray calls)
            {
                for (var j = 0; j < calls.Count; j++)
                {
                    var cj = j;
                    var call = calls[j]!.AsObject();
                    inject.Inject(call, $"messages[{at}].tool_calls[{cj}]", r => UnknownFieldInjector.Path(r, "messages", at, "tool_calls", cj));
                    inject.Inject(call["function"]!.AsObject(), $"messages[{at}].tool_calls[{cj}].function",
                        r => UnknownFieldInjector.Path(r, "messages", at, "tool_calls", cj, "function"));
                }
            }
        }
        if (req["tools"] is JsonArray tools)
        {
            foreach (var t in tools)
            {
                var tool = t!.AsObject();
                var fn = tool["function"]!.AsObject();
                var name = (string)fn["name"]!;
                inject.Inject(tool, $"tool {name}", r => UnknownFieldInjector.Tool(r, name, openAI: true));
                Func<JsonNode, JsonObject?> locateFn = r => UnknownFieldInjector.Tool(r, name, openAI: true)?["function"] as JsonObject;
                inject.Add(fn, $"tool {name}.function", locateFn, "response", UnknownFieldInjector.ResponseSchema(name));
                inject.Inject(fn, $"tool {name}.function", locateFn);
            }
        }
        if (req["tool_choice"] is JsonObject choice)
        {
            inject.Inject(choice, "tool_choice", r => UnknownFieldInjector.Path(r, "tool_choice"));
            inject.Inject(choice["function"]!.AsObject(), "tool_choice.function", r => UnknownFieldInjector.Path(r, "tool_choice", "function"));
        }
        if (req["stream_options"] is JsonObject so)
            inject.Inject(so, "stream_options", r => UnknownFieldInjector.Path(r, "stream_options"));
        return req;
    }

    /// <summary>A recorded Anthropic request, with the system as blocks and some tool results as block arrays, maybe
    /// streaming and with a tool_choice.</summary>
    public static JsonObject AnthropicBaseline(AgentSession session, int turns, Random rng, bool allowStream)
    {
        var req = session.AnthropicRequest(turns);
        if (req["system"] is JsonValue system && rng.Next(2) == 0)
            req["system"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = (string?)system });
        foreach (var m in req["messages"]!.AsArray())
        {
            foreach (var block in m!["content"]!.AsArray())
            {
                if ((string?)block!["type"] == "tool_result" && block["content"] is JsonValue c && rng.Next(2) == 0)
                    block["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = (string?)c });
            }
        }
        if (rng.Next(2) == 0 && req["messages"]!.AsArray().FirstOrDefault(m => (string?)m!["role"] == "user") is JsonObject firstUser)
        {
            firstUser["content"]!.AsArray().Add(new JsonObject
            {
                ["type"] = "image",
                ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = "image/png", ["data"] = "iVBORw0KGgo=" },
            });
        }
        if (allowStream && rng.Next(2) == 0) req["stream"] = true;
        if (req["tools"] is JsonArray { Count: > 0 } && rng.Next(2) == 0) req["tool_choice"] = new JsonObject { ["type"] = "auto" };
        return req;
    }

    public static JsonObject InjectAnthropic(JsonObject baseline, UnknownFieldInjector inject)
    {
        var req = baseline.DeepClone().AsObject();
        inject.Inject(req, "the request", r => r as JsonObject);
        if (req["system"] is JsonArray system)
        {
            for (var j = 0; j < system.Count; j++)
            {
                var sj = j;
                inject.Inject(system[j]!.AsObject(), $"system.{sj}", r => UnknownFieldInjector.Path(r, "system", sj));
            }
        }
        var messages = req["messages"]!.AsArray();
        for (var i = 0; i < messages.Count; i++)
        {
            var at = i;
            var m = messages[i]!.AsObject();
            inject.Inject(m, $"messages.{at}", r => UnknownFieldInjector.Path(r, "messages", at));
            var blocks = m["content"]!.AsArray();
            for (var j = 0; j < blocks.Count; j++)
            {
                var bj = j;
                var block = blocks[j]!.AsObject();
                inject.Inject(block, $"messages.{at}.content.{bj} ({block["type"]})", r => UnknownFieldInjector.Path(r, "messages", at, "content", bj));
                if (block["content"] is JsonArray inner)
                {
                    for (var k = 0; k < inner.Count; k++)
                    {
                        var ik = k;
                        inject.Inject(inner[k]!.AsObject(), $"messages.{at}.content.{bj}.content.{ik}",
                            r => UnknownFieldInjector.Path(r, "messages", at, "content", bj, "content", ik));
                    }
                }
            }
        }
        if (req["tools"] is JsonArray tools)
        {
            foreach (var t in tools)
            {
                var name = (string)t!["name"]!;
                inject.Inject(t.AsObject(), $"tool {name}", r => UnknownFieldInjector.Tool(r, name, openAI: false));
            }
        }
        if (req["tool_choice"] is JsonObject choice)
            inject.Inject(choice, "tool_choice", r => UnknownFieldInjector.Path(r, "tool_choice"));
        return req;
    }

    /// <summary>The two upstream requests are equal except <c>prompt_cache_key</c> (derived from the prefix hash).</summary>
    public static void AssertSameApartFromCacheKey(JsonNode expected, JsonNode actual, string context)
    {
        expected.AsObject().Remove("prompt_cache_key");
        actual.AsObject().Remove("prompt_cache_key");
        if (!JsonNode.DeepEquals(expected, actual))
            Assert.Fail($"{context}: with the injected fields taken out, the upstream request differs from the plain one.\n" +
                $"plain: {Clip(expected.ToJsonString())}\nrich:  {Clip(actual.ToJsonString())}");
    }

    private static string Clip(string s) => s.Length <= 4000 ? s : s[..4000] + "…";
}
