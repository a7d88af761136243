using System.Net;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Auth;

/// <summary>
/// The client key guards every <c>/v1</c> endpoint, whichever method it answers, although the gateway runs its key
/// handler itself instead of through ASP.NET Core's authentication middleware.
/// </summary>
public sealed class ClientKeyAuthenticationTests : GatewayWithFakeProvider
{
    [Fact]
    public async Task Every_v1_endpoint_refuses_a_missing_or_wrong_key_in_the_clients_shape_before_any_provider_call()
    {
        var routes = V1Routes();
        Assert.Contains(routes, r => r.Path == "/v1/chat/completions" && r.Method == "POST");
        Assert.Contains(routes, r => r.Path == "/v1/messages" && r.Method == "POST");
        Assert.Contains(routes, r => r.Path == "/v1/models" && r.Method == "GET");
        Assert.Contains(routes, r => r.Path == "/v1/embeddings"); // the passthrough catch-all

        using var anonymous = Gateway.CreateGatewayClient(key: null);
        using var wrong = Gateway.CreateGatewayClient(key: "sk-tr-wrong-key");
        foreach (var (method, path) in routes)
        {
            foreach (var client in new[] { anonymous, wrong })
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/'));
                if (method is "POST" or "PUT" or "PATCH")
                    request.Content = new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}""", Encoding.UTF8, "application/json");
                if (path == "/v1/messages") request.Headers.Add("anthropic-version", "2023-06-01");
                using var response = await client.SendAsync(request);

                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path}: {(int)response.StatusCode}");
                Assert.Equal("Bearer realm=\"tokenrouter\"", response.Headers.WwwAuthenticate.ToString());
                if (method == "HEAD") continue; // a HEAD answer has no body
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(body.Contains("authentication_error", StringComparison.Ordinal), $"{method} {path}: {body}");
                Assert.DoesNotContain("sk-tr-wrong-key", body);
            }
        }
        Assert.Equal(0, Provider.CallCount);
    }

    [Fact]
    public async Task A_valid_key_passes_and_the_host_carries_no_authentication_middleware_services()
    {
        using var client = Gateway.CreateGatewayClient();
        using var models = await client.GetAsync("v1/models");

        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        // What keeps every request free of the per-request DI scope and scoped authentication services: with them
        // registered, the host would put the authentication middleware in front of every request.
        Assert.Null(Gateway.Services.GetService<IAuthenticationSchemeProvider>());
    }

    private List<(string Method, string Path)> V1Routes()
    {
        _ = Gateway.BaseAddress; // starts the host
        var routes = new List<(string, string)>();
        foreach (var endpoint in Gateway.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            var pattern = endpoint.RoutePattern.RawText ?? "";
            if (!pattern.StartsWith("/v1/", StringComparison.Ordinal)) continue;
            var path = pattern.Replace("{**path}", "embeddings", StringComparison.Ordinal);
            var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["POST"];
            foreach (var method in methods) routes.Add((method, path));
        }
        return routes;
    }
}
