using System.Net;
using System.Text.Json;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary><c>/v1/messages</c> refusals: bad requests, a provider's rate limit, keys — each in Anthropic's error shape.</summary>
public sealed partial class MessagesApiTests
{
    [Theory]
    [InlineData("{not json", 400, "invalid_request_error")]
    [InlineData("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"x"}]}""", 400, "invalid_request_error")]
    [InlineData("""{"model":"gpt-4o","max_tokens":"ten","messages":[{"role":"user","content":"x"}]}""", 400, "invalid_request_error")]
    [InlineData("""{"model":"llama-9000","max_tokens":16,"messages":[{"role":"user","content":"x"}]}""", 404, "not_found_error")]
    public async Task Invalid_messages_requests_get_the_anthropic_error_shape_with_the_right_status(string body, int status, string errorType)
    {
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/messages", Matrix.Json(body));

        Assert.Equal(status, (int)response.StatusCode);
        await AssertAnthropicErrorAsync(response, errorType);
        Assert.Equal(0, Provider.CallCount);
    }

    [Theory]
    [MemberData(nameof(EveryProviderStreamedOrNot))]
    public async Task Provider_rate_limit_reaches_the_anthropic_sdk_as_an_anthropic_rate_limit_error(string model, bool stream)
    {
        Provider.RespondError(429, Matrix.KindOf(model) == ProviderType.Anthropic
            ? FakeResponses.AnthropicErrorBody("rate_limit_error", "Rate limit reached")
            : FakeResponses.OpenAIErrorBody("Rate limit reached", "requests", "rate_limit_exceeded"));
        var request = Matrix.AnthropicParams(model, [new UserMessageParam("x")]);

        var error = await Assert.ThrowsAsync<AnthropicRateLimitException>(async () =>
        {
            if (!stream)
            {
                await Client().Messages.Create(request);
                return;
            }

            await foreach (var _ in Client().Messages.CreateStreaming(request))
            {
            }
        });

        Assert.Equal(HttpStatusCode.TooManyRequests, error.StatusCode);
        using var body = JsonDocument.Parse(error.ResponseBody);
        Assert.Equal("error", body.RootElement.GetProperty("type").GetString());
        Assert.Equal("rate_limit_error", body.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("Rate limit reached", body.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task Missing_max_tokens_error_names_the_field()
    {
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/messages", Matrix.Json("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"x"}]}"""));

        var error = await AssertAnthropicErrorAsync(response, "invalid_request_error");
        Assert.Contains("max_tokens", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_model_surfaces_in_the_anthropic_sdk_as_not_found()
    {
        var error = await Assert.ThrowsAsync<AnthropicNotFoundException>(() =>
            Client().Messages.Create(Matrix.AnthropicParams("llama-9000", [new UserMessageParam("x")])));

        Assert.Equal(HttpStatusCode.NotFound, error.StatusCode);
        Assert.Contains("llama-9000", error.ResponseBody, StringComparison.Ordinal);
        Assert.Equal(0, Provider.CallCount);
    }

    [Fact]
    public async Task X_api_key_header_is_accepted_as_the_client_key()
    {
        Provider.RespondAnthropicText("keyed", new AnthropicUsage(3, 1));
        using var http = Gateway.CreateGatewayClient(key: null);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/messages")
        {
            Content = Matrix.Json("""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"x"}]}"""),
        };
        request.Headers.Add("x-api-key", GatewayFactory.ClientKey);
        request.Headers.Add("anthropic-version", "2023-06-01");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("keyed", body.RootElement.GetProperty("content")[0].GetProperty("text").GetString());
        var upstream = Assert.Single(Provider.Requests);
        Assert.Equal("sk-upstream-anthropic", upstream.Header("x-api-key"));
        Assert.Equal("application/json", upstream.Header("Content-Type"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("sk-tr-not-a-real-key")]
    public async Task Missing_or_unknown_key_gets_401_in_the_anthropic_error_shape(string? key)
    {
        using var http = Gateway.CreateGatewayClient(key: null);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/messages")
        {
            Content = Matrix.Json("""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"x"}]}"""),
        };
        if (key is not null) request.Headers.Add("x-api-key", key);

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        await AssertAnthropicErrorAsync(response, "authentication_error");
        Assert.Equal(0, Provider.CallCount);
    }

    /// <summary>Asserts <c>{"type":"error","error":{"type":…,"message":…}}</c>; returns the inner error.</summary>
    private static async Task<JsonElement> AssertAnthropicErrorAsync(HttpResponseMessage response, string errorType)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        Assert.Equal("error", root.GetProperty("type").GetString());
        var error = root.GetProperty("error");
        Assert.Equal(errorType, error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        return error.Clone();
    }
}
