using System.Text;
using System.Text.Json.Nodes;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Pipeline;

public sealed class HasherTests
{
    private static string PrefixHash(string body, ApiFormat format = ApiFormat.OpenAI)
    {
        using var envelope = PipelineHarness.Parse(body, format);
        new Canonicalizer().Canonicalize(envelope);
        return Hasher.ComputePrefixHash(envelope);
    }

    private static string Request(string model = "gpt-4o", string system = "S", string toolName = "find", string description = "Find it.",
        string schema = """{"type":"object","properties":{"q":{"type":"string"}}}""", string user = "hi") => $$$"""
        {"model":"{{{model}}}","messages":[{"role":"system","content":"{{{system}}}"},{"role":"user","content":"{{{user}}}"}],
         "tools":[{"type":"function","function":{"name":"{{{toolName}}}","description":"{{{description}}}","parameters":{{{schema}}}
        """ + "}}]}";

    [Fact]
    public void Hashes_are_32_lowercase_hex_digits()
    {
        Assert.Matches("^[0-9a-f]{32}$", PrefixHash(Request()));
        Assert.Matches("^[0-9a-f]{32}$", Hasher.ComputeFullHash("{}"u8, "openai", "k"));
    }

    [Fact]
    public void A_prefix_sent_again_gets_the_same_hash_string_not_a_new_one()
    {
        var first = PrefixHash(Request(user: "turn 1"));
        var again = PrefixHash(Request(user: "turn 2"));

        Assert.Same(first, again);
        Assert.NotSame(Hasher.ComputeFullHash("{}"u8, "openai", "k"), Hasher.ComputeFullHash("{}"u8, "openai", "k"));
    }

    [Fact]
    public void The_PrefixHash_covers_model_system_and_tools_but_not_the_conversation()
    {
        var reference = PrefixHash(Request());
        Assert.Equal(reference, PrefixHash(Request(user: "something else entirely")));
        Assert.NotEqual(reference, PrefixHash(Request(model: "gpt-4o-mini")));
        Assert.NotEqual(reference, PrefixHash(Request(system: "S2")));
        Assert.NotEqual(reference, PrefixHash(Request(toolName: "find2")));
        Assert.NotEqual(reference, PrefixHash(Request(description: "Find it!")));
        Assert.NotEqual(reference, PrefixHash(Request(schema: """{"type":"object","properties":{"q":{"type":"integer"}}}""")));
        Assert.NotEqual(reference, PrefixHash(Request(schema: """{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}""")));
    }

    [Fact]
    public void The_PrefixHash_is_the_same_for_equivalent_schemas()
    {
        Assert.Equal(
            PrefixHash(Request(schema: """{"type":"object","properties":{"q":{"type":"string","minLength":1}}}""")),
            PrefixHash(Request(schema: """{ "properties" : { "q" : { "minLength" : 1.0, "type" : "string" } }, "type" : "object" }""")));
    }

    [Fact]
    public void The_PrefixHash_keeps_fields_apart()
    {
        // "ab" + "c" must not hash like "a" + "bc".
        Assert.NotEqual(PrefixHash(Request(toolName: "ab", description: "c")), PrefixHash(Request(toolName: "a", description: "bc")));
        Assert.NotEqual(PrefixHash(Request(model: "m1", system: "x")), PrefixHash(Request(model: "m", system: "1x")));
    }

    [Fact]
    public void The_PrefixHash_depends_on_the_tool_order_the_Arranger_chose()
    {
        const string two = """
            {"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[
             {"type":"function","function":{"name":"a","parameters":{"type":"object"}}},
             {"type":"function","function":{"name":"b","parameters":{"type":"object"}}}]}
            """;
        using var envelope = PipelineHarness.Parse(two, ApiFormat.OpenAI);
        var ab = Hasher.ComputePrefixHash(envelope);
        envelope.Tools.Reverse();
        Assert.NotEqual(ab, Hasher.ComputePrefixHash(envelope));
    }

    [Fact]
    public void The_same_system_reads_the_same_from_an_Anthropic_client()
    {
        var anthropic = PrefixHash("""
            {"model":"m","max_tokens":5,"system":"S","messages":[{"role":"user","content":"hi"}],
             "tools":[{"name":"find","description":"Find it.","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}]}
            """, ApiFormat.Anthropic);
        Assert.Equal(PrefixHash(Request(model: "m")), anthropic);
    }

    [Fact]
    public void Every_turn_of_a_real_session_shares_one_PrefixHash()
    {
        var harness = new PipelineHarness();
        foreach (var session in AgentSessions.Sample(tauBench: 3, toolBench: 3))
        {
            var hashes = session.OpenAIRequests().Select(r => harness.Run(r.ToJsonString(), ApiFormat.OpenAI, ProviderKind.OpenAI).PrefixHash).Distinct().ToList();
            Assert.Single(hashes);
        }
    }

    [Fact]
    public void The_FullHash_depends_on_every_byte_the_provider_and_the_scope()
    {
        var body = Encoding.UTF8.GetBytes("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""");
        var reference = Hasher.ComputeFullHash(body, "openai", "key-1");

        Assert.Equal(reference, Hasher.ComputeFullHash(body.ToArray(), "openai", "key-1"));
        Assert.NotEqual(reference, Hasher.ComputeFullHash(body, "openai-2", "key-1"));
        Assert.NotEqual(reference, Hasher.ComputeFullHash(body, "openai", "key-2"));
        for (var i = 0; i < body.Length; i++)
        {
            var changed = body.ToArray();
            changed[i] ^= 0x01;
            Assert.NotEqual(reference, Hasher.ComputeFullHash(changed, "openai", "key-1"));
        }
        // The provider and scope are delimited: ("openai", "1key") is not ("openai1", "key").
        Assert.NotEqual(Hasher.ComputeFullHash(body, "openai", "1key"), Hasher.ComputeFullHash(body, "openai1", "key"));
    }

    [Fact]
    public void The_FullHash_is_taken_over_canonical_bytes()
    {
        // Two clients' spellings of one request: the hash sees only the canonical outbound bytes.
        var a = JsonNode.Parse(Request())!;
        var b = new ClientVariant(new Random(9)).Render(a);
        var harness = new PipelineHarness();
        var first = harness.Run(a.ToJsonString(), ApiFormat.OpenAI, ProviderKind.DeepSeek);
        var second = harness.Run(b, ApiFormat.OpenAI, ProviderKind.DeepSeek);
        Assert.NotEqual(a.ToJsonString(), b);
        Assert.Equal(first.FullHash, second.FullHash);
        Assert.Equal(Hasher.ComputeFullHash(Encoding.UTF8.GetBytes(first.Body), "deepseek", "tenant-a"), first.FullHash);
    }
}
