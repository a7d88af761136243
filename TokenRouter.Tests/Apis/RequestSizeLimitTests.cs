using System.Net;
using System.Text;
using System.Text.Json;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// Body and header size limits, set through the seed's variable names, answered with 413 / 431 in the client's own
/// error shape on the chat, messages and passthrough endpoints — and nothing oversized reaches the provider.
/// </summary>
public sealed class RequestSizeLimitTests : IAsyncLifetime
{
    private const int BodyLimit = 16 * 1024;
    private const int HeaderLimit = 8 * 1024;
    private FakeProvider _provider = null!;
    private GatewayFactory _gateway = null!;

    public async Task InitializeAsync()
    {
        _provider = await FakeProvider.StartAsync();
        var settings = GatewayFactory.ProvidersAt(_provider);
        settings["MAX_REQUEST_BODY_BYTES"] = BodyLimit.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["MAX_REQUEST_HEADER_BYTES"] = HeaderLimit.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _gateway = new GatewayFactory(settings);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _provider.DisposeAsync();
    }

    public static TheoryData<string, string, bool> Endpoints => new()
    {
        { "v1/chat/completions", """{"model":"gpt-4o","messages":[{"role":"user","content":"PAD"}]}""", false },
        { "v1/messages", """{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"PAD"}]}""", true },
        { "v1/embeddings", """{"model":"gpt-4o","input":"PAD"}""", false },
    };

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task A_body_over_the_limit_is_a_413_in_the_clients_shape(string path, string body, bool anthropic)
    {
        using var http = _gateway.CreateGatewayClient();
        using var response = await http.PostAsync(path, Json(body.Replace("PAD", new string('a', BodyLimit))));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        AssertShape(await response.Content.ReadAsStringAsync(), anthropic, "request_too_large");
        Assert.Empty(_provider.Requests);
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task Headers_over_the_limit_are_a_431_in_the_clients_shape(string path, string body, bool anthropic)
    {
        using var http = _gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(body.Replace("PAD", "hi")) };
        request.Headers.TryAddWithoutValidation("X-Trace-Context", new string('t', HeaderLimit));
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        AssertShape(await response.Content.ReadAsStringAsync(), anthropic, "request_headers_too_large");
        Assert.Empty(_provider.Requests);
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task A_request_within_both_limits_is_served(string path, string body, bool _)
    {
        using var http = _gateway.CreateGatewayClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(body.Replace("PAD", new string('a', BodyLimit / 2))) };
        request.Headers.TryAddWithoutValidation("X-Trace-Context", new string('t', HeaderLimit / 2));
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single(_provider.Requests);
    }

    [Theory]
    [InlineData(100)]
    [InlineData(64 * 1024 * 1024)]
    public void A_header_limit_out_of_range_fails_validation_naming_the_variable(int limit)
    {
        var result = new GatewayOptionsValidator().Validate(null, new GatewayOptions { MaxRequestHeadersBytes = limit });

        Assert.True(result.Failed);
        Assert.Contains("MAX_REQUEST_HEADER_BYTES", result.FailureMessage, StringComparison.Ordinal);
    }

    private static void AssertShape(string body, bool anthropic, string openAICode)
    {
        var root = JsonDocument.Parse(body).RootElement;
        if (anthropic)
        {
            Assert.Equal("error", root.GetProperty("type").GetString());
            Assert.False(string.IsNullOrEmpty(root.GetProperty("error").GetProperty("message").GetString()));
        }
        else
        {
            Assert.False(root.TryGetProperty("type", out _), "an OpenAI error has no top-level type");
            Assert.Equal(openAICode, root.GetProperty("error").GetProperty("code").GetString());
            Assert.Equal("invalid_request_error", root.GetProperty("error").GetProperty("type").GetString());
        }
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
