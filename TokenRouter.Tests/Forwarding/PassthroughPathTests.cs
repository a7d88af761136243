using Microsoft.AspNetCore.Http;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Tests.Forwarding;

/// <summary>A passthrough path never leaves the provider's base path, however its dot segments are encoded.</summary>
public sealed class PassthroughPathTests
{
    private static readonly ProviderEndpoint OpenAI = new()
    {
        Name = "openai",
        Kind = ProviderKind.OpenAI,
        BaseUri = new Uri("http://upstream.test/openai/v1/"),
    };

    private static Uri Resolve(string path, string query = "")
    {
        var context = new DefaultHttpContext();
        context.Request.Path = new PathString(path);
        context.Request.QueryString = new QueryString(query);
        return PassthroughPath.Resolve(OpenAI, context.Request);
    }

    /// <summary>A dot segment written the ways a client or an attacker can: raw, percent-encoded in either case, encoded
    /// again (and again), half-encoded, with backslashes.</summary>
    public static IEnumerable<object[]> DotSegments()
    {
        var random = new Random(16);
        string[] dots = [".", ".."];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 300; i++)
        {
            var dot = dots[random.Next(2)];
            var encoded = string.Concat(dot.Select(c => random.Next(3) switch
            {
                0 => ".",
                1 => "%2e",
                _ => "%2E",
            }));
            for (var depth = random.Next(4); depth > 0; depth--) encoded = encoded.Replace("%", "%25");
            if (seen.Add(encoded)) yield return [encoded];
        }
    }

    [Theory]
    [MemberData(nameof(DotSegments))]
    public void A_dot_segment_in_any_encoding_is_refused(string segment)
    {
        Assert.False(PassthroughPath.IsSafe($"/{segment}/stats"));
        Assert.False(PassthroughPath.IsSafe($"/files/{segment}"));
        var error = Assert.Throws<ApiError>(() => Resolve($"/v1/{segment}/{segment}/stats"));
        Assert.Equal(400, error.Status);
    }

    [Theory]
    [InlineData("/..\\..\\stats")]
    [InlineData("/%5c..%5cstats")]
    [InlineData("/%255c..")]
    [InlineData("/..%2fstats")]
    [InlineData("/%252e%252e%252fstats")]
    [InlineData("/files/a%00b")]
    [InlineData("/files/%0d%0aHost:%20evil")]
    public void Backslashes_encoded_slashes_around_dots_and_control_characters_are_refused(string path) =>
        Assert.False(PassthroughPath.IsSafe(path));

    [Theory]
    [InlineData("/v1/embeddings", "/openai/v1/embeddings")]
    [InlineData("/v1/files/file-abc123/content", "/openai/v1/files/file-abc123/content")]
    [InlineData("/v1/models/gpt-4.1", "/openai/v1/models/gpt-4.1")]
    [InlineData("/v1/files/a..b", "/openai/v1/files/a..b")]
    [InlineData("/v1/fine_tuning/jobs/ft:gpt-4o:org::id", "/openai/v1/fine_tuning/jobs/ft:gpt-4o:org::id")]
    public void Ordinary_paths_are_joined_under_the_base_path(string path, string expected)
    {
        var uri = Resolve(path, "?limit=2");
        Assert.Equal("upstream.test", uri.Host);
        Assert.Equal(expected, uri.AbsolutePath);
        Assert.Equal("?limit=2", uri.Query);
    }

    [Fact]
    public void Random_paths_either_are_refused_or_stay_under_the_base_path()
    {
        var random = new Random(1616);
        string[] atoms = ["a", "files", ".", "..", "%2e", "%2E%2e", "%252e", "%25252e", "\\", "%5c", "%2f", "%252f", "/", "x.y", "%", "%zz", "~", ":", "?", "#"];
        for (var i = 0; i < 5000; i++)
        {
            var path = "/v1/" + string.Concat(Enumerable.Range(0, random.Next(1, 8)).Select(_ => atoms[random.Next(atoms.Length)]));
            Uri uri;
            try
            {
                uri = Resolve(path);
            }
            catch (ApiError error) when (error.Status == 400)
            {
                continue;
            }
            Assert.Equal("upstream.test", uri.Host);
            Assert.StartsWith("/openai/v1/", uri.AbsolutePath, StringComparison.Ordinal);
            Assert.DoesNotContain("/../", uri.AbsolutePath + "/", StringComparison.Ordinal);
        }
    }
}
