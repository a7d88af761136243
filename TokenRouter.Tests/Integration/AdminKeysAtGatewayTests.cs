using System.Net;
using System.Text.Json;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>Admin and the gateway agree through a real Redis: a key created in Admin works at the gateway, a revoked one stops.</summary>
public sealed class AdminKeysAtGatewayTests() : AdminWithGateway("admin_keys_at_gateway")
{

    protected override void ConfigureGateway(Dictionary<string, string?> settings) => settings["Gateway:AuthCacheTtl"] = "00:00:01";

    [Fact]
    public async Task Key_created_in_admin_authenticates_at_the_gateway_and_stops_working_once_revoked()
    {
        Provider.RespondOpenAIText("hi", new OpenAIUsage(10, 2));
        using var admin = AdminApp.CreateAdminClient();
        var created = await admin.CreateKeyAsync(new { name = "integration", quota_usd = 5 });
        var key = created.GetProperty("key").GetString()!;
        var id = created.GetProperty("id").GetString()!;
        using var client = Gateway.CreateGatewayClient(key);
        const string body = """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""";

        using (var ok = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body)))
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        using (var revoke = await admin.DeleteAsync($"admin/api-keys/{id}"))
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);

        // Within AUTH_CACHE_TTL (1 s here; Admin's change notification usually evicts sooner). A request that races the
        // notification may still be served; none that is refused reaches the provider.
        var served = 1;
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var response = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            if (response.StatusCode == HttpStatusCode.OK) served++;
            return response.StatusCode == HttpStatusCode.Unauthorized;
        }, TimeSpan.FromSeconds(10), "the revoked key to be refused");
        Assert.Equal(served, Provider.CallCount);
    }

    [Fact]
    public async Task Unknown_key_is_refused_in_redis_mode_and_static_keys_still_work()
    {
        Provider.RespondOpenAIText("hi", new OpenAIUsage(10, 2));
        using var unknown = Gateway.CreateGatewayClient("sk-tr-never-created");
        using var configured = Gateway.CreateGatewayClient();
        const string body = """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""";

        using var refused = await unknown.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
        using var accepted = await configured.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));

        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
        Assert.Equal("invalid_api_key", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }
}
