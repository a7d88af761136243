using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// A passthrough request that cannot be served — an unknown model, a bad key, a provider that errors, is unreachable or
/// hangs — gets a clear error in the client's own API shape with the right status, and is metered when it reached a
/// provider.
/// </summary>
public sealed class PassthroughErrorsTests : GatewayWithFakeProvider
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    protected override void Configure(Dictionary<string, string?> settings) =>
        settings["Gateway:ProviderResponseTimeout"] = "00:00:02";

    [Fact]
    public async Task Unknown_model_gets_404_in_openai_shape_and_never_reaches_a_provider()
    {
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/embeddings", ChatCompletionsApiTests.Json("""{"model":"llama-embed-9000","input":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = await ChatCompletionsApiTests.ErrorOf(response);
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(0, Provider.CallCount);
        Assert.Empty(Gateway.Service<InMemoryUsageSink>().Snapshot());
    }

    [Fact]
    public async Task Request_with_x_api_key_gets_errors_in_anthropic_shape()
    {
        using var http = Gateway.CreateGatewayClient(key: null);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/complete")
        {
            Content = ChatCompletionsApiTests.Json("""{"model":"llama-9000","prompt":"\n\nHuman: hi\n\nAssistant:"}"""),
        };
        request.Headers.Add("x-api-key", GatewayFactory.ClientKey);

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var root = await RootOf(response);
        Assert.Equal("error", root.GetProperty("type").GetString());
        Assert.Equal("not_found_error", root.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(0, Provider.CallCount);
    }

    [Fact]
    public async Task Bad_client_key_gets_401_in_the_clients_own_shape()
    {
        using var wrongBearer = Gateway.CreateGatewayClient(key: "sk-tr-wrong");
        using var openAI = await wrongBearer.GetAsync("v1/files");
        using var anonymous = Gateway.CreateGatewayClient(key: null);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/messages/count_tokens")
        {
            Content = ChatCompletionsApiTests.Json("""{"model":"claude-sonnet-4-5","messages":[]}"""),
        };
        request.Headers.Add("x-api-key", "sk-tr-wrong");
        using var anthropic = await anonymous.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, openAI.StatusCode);
        var openAIError = await ChatCompletionsApiTests.ErrorOf(openAI);
        Assert.Equal("authentication_error", openAIError.GetProperty("type").GetString());
        Assert.Equal("invalid_api_key", openAIError.GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, anthropic.StatusCode);
        var anthropicRoot = await RootOf(anthropic);
        Assert.Equal("error", anthropicRoot.GetProperty("type").GetString());
        Assert.Equal("authentication_error", anthropicRoot.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain("sk-tr-wrong", await anthropic.Content.ReadAsStringAsync());
        Assert.Equal(0, Provider.CallCount);
    }

    [Theory]
    [InlineData(500)]
    [InlineData(400)]
    public async Task Provider_errors_are_relayed_with_their_status_and_body(int status)
    {
        var body = FakeResponses.OpenAIErrorBody("Upstream says no", "invalid_request_error", "upstream_code");
        Provider.RespondError(status, body);
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.PostAsync("v1/embeddings", ChatCompletionsApiTests.Json("""{"model":"text-embedding-3-small","input":"x"}"""));

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        Assert.Equal(status, (await Matrix.SingleUsageRecordAsync(Gateway)).Status);
    }

    [Fact]
    public async Task Provider_error_that_is_not_json_is_told_in_the_clients_shape_with_its_status()
    {
        Provider.RespondError(503, "<html><body>Service Unavailable</body></html>", "text/html");
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.GetAsync("v1/batches");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var error = await ChatCompletionsApiTests.ErrorOf(response);
        Assert.Equal("api_error", error.GetProperty("type").GetString());
        Assert.DoesNotContain("<html>", error.GetProperty("message").GetString());
        Assert.Equal(503, (await Matrix.SingleUsageRecordAsync(Gateway)).Status);
    }

    [Fact]
    public async Task Unreachable_provider_gets_502_in_the_clients_shape()
    {
        var port = FreePort();
        await using var gateway = new GatewayFactory(new Dictionary<string, string?>
        {
            ["Providers:OpenAI:BaseUrl"] = $"http://127.0.0.1:{port}/v1",
            ["Providers:OpenAI:ApiKey"] = "sk-x",
            ["Providers:Anthropic:BaseUrl"] = $"http://127.0.0.1:{port}",
            ["Providers:Anthropic:ApiKey"] = "sk-y",
        });
        using var http = gateway.CreateGatewayClient(key: null);

        using var openAIRequest = new HttpRequestMessage(HttpMethod.Get, "v1/files");
        openAIRequest.Headers.Authorization = new AuthenticationHeaderValue("Bearer", GatewayFactory.ClientKey);
        using var openAI = await http.SendAsync(openAIRequest);
        using var anthropicRequest = new HttpRequestMessage(HttpMethod.Get, "v1/files");
        anthropicRequest.Headers.Add("x-api-key", GatewayFactory.ClientKey);
        using var anthropic = await http.SendAsync(anthropicRequest);

        Assert.Equal(HttpStatusCode.BadGateway, openAI.StatusCode);
        Assert.Equal("upstream_error", (await ChatCompletionsApiTests.ErrorOf(openAI)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadGateway, anthropic.StatusCode);
        var anthropicRoot = await RootOf(anthropic);
        Assert.Equal("error", anthropicRoot.GetProperty("type").GetString());
        Assert.Equal("api_error", anthropicRoot.GetProperty("error").GetProperty("type").GetString());
        await Eventually.TrueAsync(() => gateway.Service<InMemoryUsageSink>().Snapshot().Count >= 2, "both usage records");
        var records = gateway.Service<InMemoryUsageSink>().Snapshot();
        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(502, r.Status));
    }

    [Fact]
    public async Task Hanging_provider_gets_504_and_the_upstream_call_is_cancelled()
    {
        Provider.RespondHang();
        using var http = Gateway.CreateGatewayClient();

        using var response = await http.GetAsync("v1/files");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("upstream_timeout", (await ChatCompletionsApiTests.ErrorOf(response)).GetProperty("code").GetString());
        await Provider.WaitForCancelledAsync(1, Timeout);
    }

    private static async Task<JsonElement> RootOf(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.Clone();
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
