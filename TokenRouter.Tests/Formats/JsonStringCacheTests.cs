using System.Text.Json;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Tests.Formats;

public sealed class JsonStringCacheTests
{
    private static JsonElement Value(string json) => JsonDocument.Parse(json).RootElement.GetProperty("v");

    [Fact]
    public void The_same_raw_value_in_two_requests_returns_one_shared_string()
    {
        var id = "call_" + Guid.NewGuid().ToString("N");
        var first = JsonStringCache.Get(Value($$"""{"v":"{{id}}"}"""));
        var second = JsonStringCache.Get(Value($$"""{"other":1,"v":"{{id}}"}"""));

        Assert.Equal(id, first);
        Assert.Same(first, second);
    }

    [Theory]
    [InlineData("""{"v":"{\"city\":\"Z\u00fcrich\",\"n\":1}"}""")]
    [InlineData("""{"v":"tab\there \ud83d\ude00 quote\" slash\/"}""")]
    [InlineData("""{"v":""}""")]
    public void Escaped_values_decode_exactly_as_without_the_cache(string json)
    {
        var expected = Value(json).GetString();

        Assert.Equal(expected, JsonStringCache.Get(Value(json)));
        Assert.Equal(expected, JsonStringCache.Get(Value(json))); // the cached one too
    }

    [Fact]
    public void Differently_escaped_equal_values_each_decode_to_the_value()
    {
        var tag = Guid.NewGuid().ToString("N");
        var plain = JsonStringCache.Get(Value($$"""{"v":"é{{tag}}"}"""));
        var escaped = JsonStringCache.Get(Value($$"""{"v":"\u00e9{{tag}}"}"""));

        Assert.Equal("é" + tag, plain);
        Assert.Equal("é" + tag, escaped);
    }

    [Fact]
    public void An_object_and_a_string_holding_its_text_are_kept_apart()
    {
        var tag = Guid.NewGuid().ToString("N");
        var asObject = JsonStringCache.GetRawText(Value($$$"""{"v":{"id":"{{{tag}}}"}}"""));
        var asString = JsonStringCache.Get(Value($$"""{"v":"{\"id\":\"{{tag}}\"}"}"""));

        Assert.Equal($$"""{"id":"{{tag}}"}""", asObject);
        Assert.Equal($$"""{"id":"{{tag}}"}""", asString);
        Assert.Same(asObject, JsonStringCache.GetRawText(Value($$$"""{"v":{"id":"{{{tag}}}"}}""")));
    }

    [Fact]
    public void A_long_value_is_decoded_afresh_each_time()
    {
        var text = new string('x', JsonStringCache.MaxValueBytes + 1);
        var first = JsonStringCache.Get(Value($$"""{"v":"{{text}}"}"""));
        var second = JsonStringCache.Get(Value($$"""{"v":"{{text}}"}"""));

        Assert.Equal(text, second);
        Assert.NotSame(first, second);
    }

    [Fact]
    public void Canonical_arguments_are_remembered_for_the_shared_string()
    {
        var arguments = JsonStringCache.Get(Value($$"""{"v":"{\"b\":1,\"a\":\"{{Guid.NewGuid():N}}\"}"}"""));

        var first = CanonicalJson.CanonicalizeText(arguments);
        var second = CanonicalJson.CanonicalizeText(arguments);

        Assert.StartsWith("{\"a\":", first);
        Assert.Same(first, second);
    }
}
