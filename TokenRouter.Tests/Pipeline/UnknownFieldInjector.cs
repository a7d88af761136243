using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenRouter.Tests.Pipeline;

/// <summary>One field put into a request, and how to find the object it must arrive on in what the provider received.</summary>
internal sealed record InjectedField(string Where, Func<JsonNode, JsonObject?> Locate, string Name, JsonNode? Value);

/// <summary>
/// Puts fields the gateway does not model into a client's request: random names (ASCII, non-ASCII, characters that need
/// escaping) and values of every JSON type (strings with escapes and emoji, integers, big and exponent numbers, booleans,
/// null, arrays and objects nested a few levels), each recorded with where it must arrive.
/// </summary>
internal sealed class UnknownFieldInjector(Random rng)
{
    /// <summary>Names the gateway reads somewhere (at any level): never generated, so a field is always unknown where it is put.</summary>
    private static readonly HashSet<string> Reserved =
    [
        "model", "messages", "tools", "tool_choice", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "stop_sequences", "parallel_tool_calls", "prompt_cache_key", "system", "role",
        "content", "tool_calls", "tool_call_id", "name", "type", "text", "image_url", "url", "id", "function", "arguments",
        "parameters", "description", "strict", "cache_control", "input", "input_schema", "tool_use_id", "is_error",
        "source", "include_usage", "disable_parallel_tool_use", "n", "top_k", "top_logprobs", "seed", "refusal",
    ];

    private static readonly string[] Words = ["trace", "hint", "vendor", "meta", "x", "score", "route", "ünïcødé", "日本", "tag", "opt", "a b", "quote\"d", "back\\slash", "tab\tbed"];
    private static readonly string[] Texts = ["plain", "", "line\nbreak", "tab\t\"quoted\"", "emoji 😀🚀", "ünïcødé — ✓", "</script><b>", "\\u0041 literal", "\u0001control", "日本語のテキスト", new string('x', 300)];

    public List<InjectedField> Fields { get; } = [];

    /// <summary>Adds 1–3 unknown fields to <paramref name="target"/>; <paramref name="locate"/> finds its counterpart upstream.</summary>
    public void Inject(JsonObject target, string where, Func<JsonNode, JsonObject?> locate, int min = 1)
    {
        var count = rng.Next(min, 4);
        for (var i = 0; i < count; i++) Add(target, where, locate, NewName(target), RandomValue(0));
    }

    /// <summary>Adds one given field (a known-to-clients field the gateway does not model, e.g. BFCL's <c>response</c>).</summary>
    public void Add(JsonObject target, string where, Func<JsonNode, JsonObject?> locate, string name, JsonNode? value)
    {
        target[name] = value;
        Fields.Add(new InjectedField(where, locate, name, value?.DeepClone()));
    }

    private string NewName(JsonObject target)
    {
        while (true)
        {
            var name = rng.Next(4) switch
            {
                0 => Words[rng.Next(Words.Length)] + "_" + rng.Next(1000).ToString(CultureInfo.InvariantCulture),
                1 => RandomAscii(rng.Next(1, 16)),
                2 => "x-" + Words[rng.Next(Words.Length)],
                _ => Words[rng.Next(Words.Length)] + Words[rng.Next(Words.Length)],
            };
            if (!Reserved.Contains(name) && !target.ContainsKey(name)) return name;
        }
    }

    private string RandomAscii(int length)
    {
        var sb = new StringBuilder(length);
        for (var i = 0; i < length; i++) sb.Append((char)rng.Next('a', 'z' + 1));
        if (rng.Next(3) == 0) sb.Append('_').Append(rng.Next(100));
        return sb.ToString();
    }

    public JsonNode? RandomValue(int depth)
    {
        var kind = rng.Next(depth >= 3 ? 8 : 10);
        return kind switch
        {
            0 => JsonValue.Create(Texts[rng.Next(Texts.Length)]),
            1 => JsonValue.Create(rng.NextInt64(-1_000_000_000_000, 1_000_000_000_000)),
            2 => JsonNode.Parse(NumberText()),
            3 => JsonValue.Create(true),
            4 => JsonValue.Create(false),
            5 => null,
            6 => JsonValue.Create(rng.Next(-5, 5)),
            7 => JsonValue.Create(Math.Round(rng.NextDouble() * 1000 - 500, 3)),
            8 => RandomArray(depth + 1),
            _ => RandomObject(depth + 1),
        };
    }

    /// <summary>Number texts a client may write that .NET's own serializer would not (exponents, beyond long, negative zero).</summary>
    private string NumberText() => rng.Next(6) switch
    {
        0 => "1e-7",
        1 => "12345678901234567890123",
        2 => "-0.0",
        3 => "6.02E23",
        4 => "0.1",
        _ => "-17",
    };

    private JsonArray RandomArray(int depth)
    {
        var array = new JsonArray();
        var n = rng.Next(0, 4);
        for (var i = 0; i < n; i++) array.Add(RandomValue(depth));
        return array;
    }

    private JsonObject RandomObject(int depth)
    {
        var o = new JsonObject();
        var n = rng.Next(0, 4);
        for (var i = 0; i < n; i++)
        {
            var name = Words[rng.Next(Words.Length)] + i.ToString(CultureInfo.InvariantCulture);
            // Nested objects may use any name, reserved ones included: the gateway never looks inside an unknown field.
            if (rng.Next(5) == 0) name = "type";
            if (!o.ContainsKey(name)) o[name] = RandomValue(depth);
        }
        return o;
    }

    /// <summary>A BFCL-style <c>response</c> schema: what the function returns, which the model reads.</summary>
    public static JsonObject ResponseSchema(string toolName) => new()
    {
        ["type"] = "dict",
        ["properties"] = new JsonObject
        {
            ["result"] = new JsonObject { ["type"] = "string", ["description"] = $"What {toolName} returns." },
            ["status_code"] = new JsonObject { ["type"] = "integer", ["description"] = "0 on success" },
        },
        ["description"] = $"The response of {toolName}.",
    };

    /// <summary>
    /// Checks every injected field arrived on its object with an equal value, then removes it there, so what is left
    /// can be compared with what the same request without those fields sent.
    /// </summary>
    public void AssertArrivedAndRemove(JsonNode upstream, string context)
    {
        foreach (var f in Fields)
        {
            var target = f.Locate(upstream);
            Assert.True(target is not null, $"{context}: the object for {f.Where} is missing upstream.");
            Assert.True(target!.TryGetPropertyValue(f.Name, out var arrived), $"{context}: '{f.Name}' on {f.Where} did not reach the provider.");
            Assert.True(JsonNode.DeepEquals(f.Value, arrived),
                $"{context}: '{f.Name}' on {f.Where} arrived as {arrived?.ToJsonString() ?? "null"}, sent {f.Value?.ToJsonString() ?? "null"}.");
        }
        foreach (var f in Fields) f.Locate(upstream)!.Remove(f.Name);
    }

    public static JsonObject? Path(JsonNode root, params object[] steps)
    {
        JsonNode? node = root;
        foreach (var step in steps)
        {
            node = step switch
            {
                int i when node is JsonArray a && i < a.Count => a[i],
                string s when node is JsonObject o => o[s],
                _ => null,
            };
            if (node is null) return null;
        }
        return node as JsonObject;
    }

    /// <summary>The tool named <paramref name="name"/> in an upstream <c>tools</c> array (the Arranger reorders tools).</summary>
    public static JsonObject? Tool(JsonNode root, string name, bool openAI)
    {
        if (root["tools"] is not JsonArray tools) return null;
        foreach (var t in tools)
        {
            var n = openAI ? t?["function"]?["name"] : t?["name"];
            if (n is JsonValue v && v.GetValueKind() == JsonValueKind.String && (string?)v == name) return t as JsonObject;
        }
        return null;
    }
}
