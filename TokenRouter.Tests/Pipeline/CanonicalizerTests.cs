using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;

namespace TokenRouter.Tests.Pipeline;

public sealed class CanonicalizerTests
{
    private readonly Canonicalizer _canonicalizer = new();

    private Envelope Canonicalized(string body, ApiFormat format = ApiFormat.OpenAI)
    {
        var envelope = PipelineHarness.Parse(body, format);
        _canonicalizer.Canonicalize(envelope);
        return envelope;
    }

    private static string Schema(ToolDefinition tool) => Encoding.UTF8.GetString(tool.CanonicalParameters!);

    [Fact]
    public void Tool_schema_keys_are_sorted_recursively_and_array_order_is_kept()
    {
        using var envelope = Canonicalized("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"book",
             "parameters":{"type":"object","required":["origin","destination","cabin"],
              "properties":{"origin":{"type":"string","description":"IATA code"},"cabin":{"enum":["economy","basic_economy","business"],"type":"string"},
               "destination":{"type":"string"},"passengers":{"type":"array","items":{"type":"object","required":["last","first"],"properties":{"last":{"type":"string"},"first":{"type":"string"}}}}}}}}]}
            """);

        Assert.Equal(
            """{"properties":{"cabin":{"enum":["economy","basic_economy","business"],"type":"string"},"destination":{"type":"string"},"origin":{"description":"IATA code","type":"string"},"passengers":{"items":{"properties":{"first":{"type":"string"},"last":{"type":"string"}},"required":["last","first"],"type":"object"},"type":"array"}},"required":["origin","destination","cabin"],"type":"object"}""",
            Schema(envelope.Tools[0]));
    }

    [Fact]
    public void Real_tool_schemas_in_any_key_order_whitespace_and_number_format_get_identical_bytes()
    {
        var rng = new Random(11);
        var toolSets = AgentSessions.All.GroupBy(s => s.Tools.ToJsonString()).Select(g => g.First().Tools).ToList();
        Assert.True(toolSets.Count >= 2, "the workload holds several tool sets");
        foreach (var tools in toolSets)
        {
            var body = new JsonObject { ["model"] = "m", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }), ["tools"] = tools.DeepClone() };
            using var reference = Canonicalized(body.ToJsonString());
            for (var v = 0; v < 3; v++)
            {
                using var variant = Canonicalized(new ClientVariant(rng, Variation.KeyOrder | Variation.Whitespace | Variation.NumberFormats | Variation.StringEscapes).Render(body));
                for (var i = 0; i < reference.Tools.Count; i++)
                {
                    Assert.Equal(reference.Tools[i].Name, variant.Tools[i].Name);
                    Assert.Equal(Schema(reference.Tools[i]), Schema(variant.Tools[i]));
                    Assert.True(JsonMeaning.Equal(reference.Tools[i].Parameters, JsonDocument.Parse(Schema(variant.Tools[i])).RootElement));
                }
            }
        }
    }

    [Theory]
    [InlineData("""{"minimum":1}""", """{"minimum":1.0}""")]
    [InlineData("""{"minimum":1}""", """{"minimum":1e0}""")]
    [InlineData("""{"maximum":0.5,"default":100}""", """{"default":1E2,"maximum":5e-1}""")]
    public void Number_formats_inside_schemas_converge(string a, string b)
    {
        string Canon(string props) => Schema(Canonicalized("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f",
             "parameters":{"type":"object","properties":{"n":
            """ + props + "}}}}]}").Tools[0]);
        Assert.Equal(Canon(a), Canon(b));
    }

    [Theory]
    [InlineData("""{"a": 1}""", """{"a":1}""")]
    [InlineData("""{"unit": "c", "city": "Paris"}""", """{"city":"Paris","unit":"c"}""")]
    [InlineData("""{"amount": 1.0, "ids": [3, 1e0]}""", """{"amount":1,"ids":[3,1]}""")]
    [InlineData("""{"nested": {"z": {"y": 1, "x": [ {"b": 2, "a": 1} ]}}}""", """{"nested":{"z":{"x":[{"a":1,"b":2}],"y":1}}}""")]
    public void OpenAI_tool_call_arguments_in_any_spacing_key_order_and_number_format_get_one_text(string sent, string expected)
    {
        using var envelope = Canonicalized("""
            {"model":"m","messages":[{"role":"user","content":"hi"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":
            """ + JsonSerializer.Serialize(sent) + """
            }}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}
            """);
        Assert.Equal(expected, envelope.Messages[1].ToolCalls![0].Arguments);
    }

    [Fact]
    public void Anthropic_tool_use_input_in_any_spacing_and_key_order_gets_one_text()
    {
        string Input(string input)
        {
            using var envelope = Canonicalized($$"""
                {"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},
                 {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{{input}}}]}]}
                """, ApiFormat.Anthropic);
            return envelope.Messages[1].Parts![0].Arguments!;
        }
        Assert.Equal("""{"city":"Paris","days":2}""", Input("""{ "days" : 2.0 , "city" : "Paris" }"""));
        Assert.Equal(Input("""{"city":"Paris","days":2}"""), Input("""{"days":2,"city":"Paris"}"""));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{\"city\": \"Par")]
    [InlineData("{'city': 'Paris'}")]
    [InlineData("city=Paris")]
    [InlineData("{\"a\":1}{\"b\":2}")]
    public void Arguments_that_are_not_valid_JSON_are_left_exactly_as_sent(string arguments)
    {
        var body = """
            {"model":"m","messages":[{"role":"user","content":"hi"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":
            """ + JsonSerializer.Serialize(arguments) + """
            }}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}
            """;
        using (var envelope = Canonicalized(body))
            Assert.Equal(arguments, envelope.Messages[1].ToolCalls![0].Arguments);

        foreach (var target in new[] { Targets.OpenAI, Targets.DeepSeek })
        {
            var outbound = new PipelineHarness().Run(body, ApiFormat.OpenAI, target);
            var sent = outbound.Json.GetProperty("messages")[1].GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString();
            Assert.Equal(arguments, sent);
        }
    }

    [Fact]
    public void Message_text_descriptions_and_strings_inside_schemas_are_never_changed()
    {
        const string text = "  Reply with {\"b\": 1, \"a\": 2.0}\n\ttabs  and  spaces, é and 😀 \\u0041 ";
        const string description = " Finds a city.\n  Input looks like {\"z\": 1, \"a\": 2} ";
        const string inSchema = "  keep   {\"b\":1, \"a\":1.0}  exactly ";
        var body = new JsonObject
        {
            ["model"] = "m",
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = text },
                new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = text }) },
                new JsonObject { ["role"] = "assistant", ["content"] = text },
                new JsonObject { ["role"] = "user", ["content"] = text }),
            ["tools"] = new JsonArray(new JsonObject
            {
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = "find_city",
                    ["description"] = description,
                    ["parameters"] = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["q"] = new JsonObject { ["type"] = "string", ["description"] = inSchema } } },
                },
            }),
        }.ToJsonString();

        using (var envelope = Canonicalized(body))
        {
            Assert.Equal(text, envelope.Messages[0].Text);
            Assert.Equal(text, envelope.Messages[1].Parts![0].Text);
            Assert.Equal(text, envelope.Messages[2].Text);
            Assert.Equal(text, envelope.Messages[3].Text);
            Assert.Equal(description, envelope.Tools[0].Description);
        }

        foreach (var target in Targets.All)
        {
            var json = new PipelineHarness().Run(body, ApiFormat.OpenAI, target).Json;
            var all = Strings(json).ToList();
            Assert.Equal(4, all.Count(s => s == text));
            Assert.Contains(description, all);
            Assert.Contains(inSchema, all);
        }
    }

    [Fact]
    public void Tools_that_are_not_functions_are_passed_on_as_sent()
    {
        using var envelope = Canonicalized("""
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web_search","search_context_size":"low","filters":{"b":1,"a":2}}]}
            """);
        Assert.True(envelope.Tools[0].IsRaw);
        Assert.Null(envelope.Tools[0].CanonicalParameters);
    }

    [Fact]
    public void Canonicalizing_twice_changes_nothing()
    {
        var body = AgentSessions.All.First(s => s.IsToolBench).OpenAIRequests().Last().ToJsonString();
        using var envelope = Canonicalized(body);
        var schemas = envelope.Tools.Select(Schema).ToList();
        var arguments = envelope.Messages.SelectMany(m => m.ToolCalls ?? []).Select(c => c.Arguments).ToList();

        _canonicalizer.Canonicalize(envelope);

        Assert.Equal(schemas, envelope.Tools.Select(Schema));
        Assert.Equal(arguments, envelope.Messages.SelectMany(m => m.ToolCalls ?? []).Select(c => c.Arguments));
    }

    private static IEnumerable<string> Strings(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => [e.GetString()!],
        JsonValueKind.Object => e.EnumerateObject().SelectMany(p => Strings(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().SelectMany(Strings),
        _ => [],
    };
}
