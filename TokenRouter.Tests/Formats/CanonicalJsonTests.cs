using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TokenRouter.Gateway.Formats;
using TokenRouter.Tests.Pipeline;

namespace TokenRouter.Tests.Formats;

public sealed class CanonicalJsonTests
{
    private static string Canonical(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Encoding.UTF8.GetString(CanonicalJson.ToBytes(doc.RootElement));
    }

    [Fact]
    public void Object_keys_are_written_in_ordinal_order_at_every_depth()
    {
        Assert.Equal(
            """{"A":0,"a":{"b":[{"x":1,"y":2}],"c":3},"b":{"_":1,"z":2}}""",
            Canonical("""{"b":{"z":2,"_":1},"a":{"c":3,"b":[{"y":2,"x":1}]},"A":0}"""));
    }

    [Fact]
    public void Array_order_is_kept_at_every_depth()
    {
        Assert.Equal(
            """{"enum":["z","a","m"],"items":[[3,1,2],{"required":["b","a"]}],"required":["city","unit"]}""",
            Canonical("""{"required":["city","unit"],"enum":["z","a","m"],"items":[[3,1,2],{"required":["b","a"]}]}"""));
    }

    [Theory]
    [InlineData("1", "1")]
    [InlineData("1.0", "1")]
    [InlineData("1.000", "1")]
    [InlineData("1e0", "1")]
    [InlineData("1E+0", "1")]
    [InlineData("10e-1", "1")]
    [InlineData("0.1e1", "1")]
    [InlineData("-0", "0")]
    [InlineData("-0.0", "0")]
    [InlineData("0e5", "0")]
    [InlineData("1e2", "100")]
    [InlineData("1.5e3", "1500")]
    [InlineData("-42.0", "-42")]
    [InlineData("9007199254740993", "9007199254740993")]
    [InlineData("9223372036854775807", "9223372036854775807")]
    public void Integral_numbers_have_one_form(string number, string expected)
    {
        Assert.Equal($$"""{"n":{{expected}}}""", Canonical($$"""{"n":{{number}}}"""));
    }

    [Theory]
    [InlineData("0.5", "5e-1", "0.50", "50E-2")]
    [InlineData("12.25", "1225e-2", "12.250", "0.1225E+2")]
    [InlineData("-0.001", "-1e-3", "-0.0010", "-10E-4")]
    [InlineData("1e-7", "0.0000001", "1.0e-7", "100e-9")]
    public void Fractional_numbers_have_one_form(string a, string b, string c, string d)
    {
        var forms = new[] { a, b, c, d }.Select(n => Canonical($$"""{"n":{{n}}}""")).Distinct().ToList();
        Assert.Single(forms);
        using var doc = JsonDocument.Parse(forms[0]);
        Assert.Equal(double.Parse(a, System.Globalization.CultureInfo.InvariantCulture), doc.RootElement.GetProperty("n").GetDouble());
    }

    [Fact]
    public void Integers_beyond_64_bits_keep_every_digit()
    {
        // A 20-digit order number read through a double would become 1.2345678901234567E+19: another number.
        Assert.Equal("""{"id":12345678901234567891}""", Canonical("""{"id": 12345678901234567891}"""));
        // Longer than 21 digits: exponent form, every significant digit kept.
        Assert.Equal("""{"id":1.2345678901234567890123456789e+29}""", Canonical("""{"id":123456789012345678901234567890}"""));
        Assert.Equal(Canonical("""{"id":123456789012345678901234567890}"""), Canonical("""{"id":1.2345678901234567890123456789E29}"""));
    }

    [Fact]
    public void Decimals_with_more_digits_than_a_double_holds_keep_every_digit()
    {
        Assert.Equal("""{"pi":3.14159265358979323846264338327950288}""", Canonical("""{"pi":3.14159265358979323846264338327950288}"""));
        Assert.Equal("""{"amount":0.10000000000000000001}""", Canonical("""{"amount":0.100000000000000000010}"""));
    }

    [Theory]
    [InlineData("""{"max":1e400}""")]
    [InlineData("""{"min":-1e400}""")]
    [InlineData("""{"tiny":1e-400}""")]
    public void Numbers_beyond_the_double_range_do_not_fail_and_keep_their_value(string json)
    {
        var canonical = Canonical(json);
        Assert.True(JsonMeaning.Equal(json, canonical), canonical);
        Assert.Equal(canonical, CanonicalJson.CanonicalizeText(json));
    }

    [Fact]
    public void Insignificant_whitespace_is_removed_and_whitespace_inside_strings_kept()
    {
        Assert.Equal(
            """{"a":"  two  spaces\n\tand a tab ","b":[1,2]}""",
            Canonical(" {\n\t\"b\" : [ 1 ,\r\n 2 ] ,  \"a\":\"  two  spaces\\n\\tand a tab \" }\n"));
    }

    [Fact]
    public void String_escapes_have_one_form_and_the_decoded_text_is_unchanged()
    {
        var plain = Canonical("""{"d":"A/é \"q\" ✓","é":1}""");
        var escaped = Canonical("""{"d":"\u0041\/\u00e9 \"q\" \u2713","\u00E9":1}""");
        Assert.Equal(plain, escaped);
        using var doc = JsonDocument.Parse(plain);
        Assert.Equal("A/é \"q\" ✓", doc.RootElement.GetProperty("d").GetString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("{")]
    [InlineData("""{"city": "Paris",""")]
    [InlineData("""{'city': 'Paris'}""")]
    [InlineData("""{"city":"Paris"} trailing""")]
    [InlineData("not json at all")]
    [InlineData("""{"a": 1, "a": }""")]
    public void Text_that_is_not_JSON_is_returned_exactly_as_sent(string arguments)
    {
        Assert.Same(arguments, CanonicalJson.CanonicalizeText(arguments));
    }

    [Fact]
    public void Canonical_text_is_returned_as_the_same_instance()
    {
        var canonical = """{"city":"Paris","days":[1,2],"unit":"c"}""";
        Assert.Same(canonical, CanonicalJson.CanonicalizeText(canonical));
    }

    [Theory]
    [InlineData("""{"a": 1}""", """{"a":1}""")]
    [InlineData("""{ "unit" : "c", "city" : "Paris" }""", """{"city":"Paris","unit":"c"}""")]
    [InlineData("""{"n": 2.0, "list": [ 3, 1.0 ]}""", """{"list":[3,1],"n":2}""")]
    [InlineData("""[ {"b":1, "a":2} ]""", """[{"a":2,"b":1}]""")]
    [InlineData("\"just a string\"", "\"just a string\"")]
    [InlineData(" 42 ", "42")]
    public void Arguments_spacing_key_order_and_number_format_do_not_change_the_canonical_text(string arguments, string expected)
    {
        Assert.Equal(expected, CanonicalJson.CanonicalizeText(arguments));
    }

    [Fact]
    public void Arguments_with_an_escaped_lone_surrogate_do_not_fail()
    {
        // A model can emit any escape; the gateway must still forward the request (never a 500).
        const string arguments = """{"text":"\ud800 broken"}""";
        var canonical = CanonicalJson.CanonicalizeText(arguments);
        Assert.False(string.IsNullOrEmpty(canonical));
    }

    [Fact]
    public void Random_json_values_in_any_client_formatting_have_one_canonical_form_with_the_same_meaning()
    {
        var rng = new Random(20240611);
        for (var i = 0; i < 300; i++)
        {
            var value = RandomJson.Value(rng, depth: 0) ?? new JsonArray();
            var original = value.ToJsonString();
            var canonical = CanonicalJson.CanonicalizeText(original);

            Assert.True(JsonMeaning.Equal(original, canonical), $"meaning changed:\n{original}\n{canonical}");
            Assert.Same(canonical, CanonicalJson.CanonicalizeText(canonical)); // idempotent

            for (var v = 0; v < 4; v++)
            {
                var variant = new ClientVariant(rng).RenderValue(value);
                Assert.Equal(canonical, CanonicalJson.CanonicalizeText(variant));
            }
        }
    }
}

/// <summary>Random JSON trees for the property tests: nested objects and arrays, unicode strings, numbers of every kind.</summary>
internal static class RandomJson
{
    private static readonly string[] Words = ["city", "unit", "a", "B", "_x", "é", "zeta", "Alpha", "alpha", "0", "a b", "日本", "😀", ""];
    private static readonly string[] Texts = ["Paris", "  spaced  ", "line\nbreak", "quote \" and \\ slash /", "emoji 😀", "tab\t", "{\"not\": \"parsed\"}", ""];
    private static readonly string[] Numbers = ["0", "1", "-1", "42", "3.5", "-0.25", "1e-7", "123456.789", "9007199254740993", "1E+21", "0.1"];

    public static JsonNode? Value(Random rng, int depth)
    {
        var kind = depth >= 4 ? rng.Next(3, 7) : rng.Next(7);
        switch (kind)
        {
            case 0 or 1:
                var o = new JsonObject();
                foreach (var key in Words.OrderBy(_ => rng.Next()).Take(rng.Next(0, 6))) o[key] = Value(rng, depth + 1);
                return o;
            case 2:
                var a = new JsonArray();
                for (var i = rng.Next(0, 5); i > 0; i--) a.Add(Value(rng, depth + 1));
                return a;
            case 3:
                return JsonValue.Create(Texts[rng.Next(Texts.Length)]);
            case 4:
                return JsonNode.Parse(Numbers[rng.Next(Numbers.Length)]);
            case 5:
                return JsonValue.Create(rng.Next(2) == 0);
            default:
                return null;
        }
    }
}
