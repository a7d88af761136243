using System.Text.Json;
using Microsoft.AspNetCore.Http;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Metering;

namespace TokenRouter.Tests.Metering;

public sealed class RequestAttributionTests
{
    private static readonly ClientIdentity Key = new("key-1", "alice", "hash");

    private static HttpRequest Request(params string[] tagHeaders)
    {
        var context = new DefaultHttpContext();
        if (tagHeaders.Length > 0) context.Request.Headers[RequestAttribution.TagsHeader] = tagHeaders;
        return context.Request;
    }

    /// <summary>The top-level fields of a request body, as the inbound adapters keep unknown ones.</summary>
    private static List<KeyValuePair<string, JsonElement>> Fields(string json) =>
        [.. JsonDocument.Parse(json).RootElement.EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value.Clone()))];

    [Fact]
    public void A_request_without_tags_or_user_keeps_the_cached_identity()
    {
        Assert.Same(Key, RequestAttribution.Apply(Key, Request(), Fields("""{"temperature":1}""")));
    }

    [Fact]
    public void Header_tags_are_trimmed_deduplicated_and_kept_in_order_across_header_lines()
    {
        var identity = RequestAttribution.Apply(Key, Request(" b , a,,b", "c,a"));

        Assert.Equal("b,a,c", identity.Tags);
        Assert.Null(identity.EndUser);
        Assert.Equal(Key.KeyId, identity.KeyId);
    }

    [Fact]
    public void Metadata_tags_as_a_string_or_an_array_join_the_header_tags()
    {
        Assert.Equal("h,x,y", RequestAttribution.Apply(Key, Request("h"), Fields("""{"metadata":{"tags":"x, y"}}""")).Tags);
        Assert.Equal("x,y,h", RequestAttribution.Apply(Key, Request(), Fields("""{"metadata":{"tags":["x","y","h"]}}""")).Tags);
    }

    [Fact]
    public void The_openai_user_and_the_anthropic_metadata_user_id_are_the_end_user()
    {
        Assert.Equal("alice", RequestAttribution.Apply(Key, Request(), Fields("""{"user":"alice"}""")).EndUser);
        Assert.Equal("bob", RequestAttribution.Apply(Key, Request(), Fields("""{"metadata":{"user_id":"bob"}}""")).EndUser);
        Assert.Null(RequestAttribution.Apply(Key, Request(), Fields("""{"user":42}""")).EndUser);
    }

    [Fact]
    public void A_long_end_user_is_cut_for_the_ledger()
    {
        var identity = RequestAttribution.Apply(Key, Request(), Fields($$"""{"user":"{{new string('u', 300)}}"}"""));

        Assert.Equal(RequestAttribution.MaxEndUserLength, identity.EndUser!.Length);
    }

    [Theory]
    [InlineData("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "at most 16 tags")]
    [InlineData("ok,bad\ttag", "control characters")]
    public void Bad_header_tags_are_refused_with_400(string header, string message)
    {
        var error = Assert.Throws<ApiError>(() => RequestAttribution.Apply(Key, Request(header)));

        Assert.Equal(400, error.Status);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void A_tag_longer_than_64_characters_is_refused_and_one_of_64_is_kept()
    {
        Assert.Throws<ApiError>(() => RequestAttribution.Apply(Key, Request(new string('t', 65))));
        Assert.Equal(new string('t', 64), RequestAttribution.Apply(Key, Request(new string('t', 64))).Tags);
    }

    [Theory]
    [InlineData("""{"metadata":{"tags":42}}""")]
    [InlineData("""{"metadata":{"tags":["ok",1]}}""")]
    public void Metadata_tags_of_another_type_are_refused(string body)
    {
        Assert.Equal(400, Assert.Throws<ApiError>(() => RequestAttribution.Apply(Key, Request(), Fields(body))).Status);
    }

    [Fact]
    public void Spaces_inside_a_tag_are_kept()
    {
        Assert.Equal("project alpha", RequestAttribution.Apply(Key, Request("project alpha")).Tags);
    }
}
