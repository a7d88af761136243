using System.Net;
using System.Text.Json;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>A deployment at its own RPM is saturated: the request goes to the next deployment, and when every one is
/// saturated the client gets a 429 in its own format with Retry-After, without a call to the provider.</summary>
public sealed class DeploymentRateLimitTests : GatewayWithFakeProvider
{
    private const string First = "sk-first-0123456789", Second = "sk-second-0123456789";

    protected override void Configure(Dictionary<string, string?> settings)
    {
        foreach (var provider in new[] { "OpenAI", "Anthropic" })
        {
            settings[$"Providers:{provider}:ApiKey"] = null;
            settings[$"Providers:{provider}:Deployments:0:Name"] = $"{provider.ToLowerInvariant()}-first";
            settings[$"Providers:{provider}:Deployments:0:ApiKey"] = First;
            settings[$"Providers:{provider}:Deployments:0:Weight"] = "1000000";
            settings[$"Providers:{provider}:Deployments:0:Rpm"] = "2";
            settings[$"Providers:{provider}:Deployments:1:Name"] = $"{provider.ToLowerInvariant()}-second";
            settings[$"Providers:{provider}:Deployments:1:ApiKey"] = Second;
            settings[$"Providers:{provider}:Deployments:1:Rpm"] = "1";
        }
    }

    [Fact]
    public async Task A_deployment_at_its_rpm_hands_the_request_to_the_next_and_all_saturated_is_a_429_with_retry_after()
    {
        Provider.RespondOpenAIText("hi", new OpenAIUsage(10, 2));
        using var client = Gateway.CreateGatewayClient();
        const string body = """{"model":"gpt-4o","messages":[{"role":"user","content":"same conversation"}]}""";
        // The limits count in one-minute windows: start early in one so all four requests fall into it.
        var second = DateTimeOffset.UtcNow.ToUnixTimeSeconds() % 60;
        if (second > 45) await Task.Delay(TimeSpan.FromSeconds(61 - second));
        var keys = new List<string?>();
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 4; i++)
        {
            last?.Dispose();
            var before = Provider.CallCount;
            last = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            statuses.Add(last.StatusCode);
            keys.Add(Provider.CallCount > before ? FailoverTests.KeyOf(Provider.LastRequest!) : null);
        }
        using (last)
        {
            Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
            Assert.Equal([First, First, Second, null], keys);
            Assert.True(last!.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 and <= 60 });
            using var error = JsonDocument.Parse(await last.Content.ReadAsStringAsync());
            Assert.Equal("deployments_saturated", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task All_deployments_saturated_is_an_anthropic_shaped_429_on_the_messages_api()
    {
        Provider.RespondAnthropicText("hi", new AnthropicUsage(10, 2));
        using var client = Gateway.CreateGatewayClient();
        const string body = """{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}""";
        HttpResponseMessage? response = null;
        // 2 + 1 requests fit in a minute; the fourth (or, across a window boundary, a later one) is refused.
        for (var i = 0; i < 10 && response?.StatusCode != HttpStatusCode.TooManyRequests; i++)
        {
            response?.Dispose();
            response = await client.PostAsync("v1/messages", ChatCompletionsApiTests.Json(body));
        }
        using (response)
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, response!.StatusCode);
            Assert.NotNull(response.Headers.RetryAfter);
            using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("error", error.RootElement.GetProperty("type").GetString());
            Assert.Equal("rate_limit_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        }
    }
}
