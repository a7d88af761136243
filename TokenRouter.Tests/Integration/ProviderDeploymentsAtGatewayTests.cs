using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>
/// Provider deployments managed through Admin reach a running gateway through a real Redis, with no restart: the fake
/// provider sees the key Admin was given (and then the rotated one) in the request's Authorization header; a disabled
/// deployment gets no traffic, a configured one stays.
/// </summary>
public sealed class ProviderDeploymentsAtGatewayTests : IAsyncLifetime
{
    private const string ConfiguredOpenAIKey = "sk-configured-openai-0123456789";
    private PostgresServer _postgres = null!;
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;
    private AdminAppFactory _admin = null!;
    private GatewayFactory _gateway = null!;
    private HttpClient _adminClient = null!;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.GetSharedAsync();
        _redis = await RedisServer.StartNewAsync();
        _provider = await FakeProvider.StartAsync();
        var database = await _postgres.CreateDatabaseAsync("provider_deployments_at_gateway");
        _admin = new AdminAppFactory(AdminAppFactory.SettingsFor(database, _redis.ConnectionString));
        _adminClient = _admin.CreateAdminClient();
        // OpenAI has a configured key; DeepSeek has none, so it routes only once Admin gives it a deployment.
        _gateway = new GatewayFactory(new Dictionary<string, string?>
        {
            ["ConnectionStrings:redis"] = _redis.ConnectionString,
            ["Providers:OpenAI:BaseUrl"] = _provider.OpenAIBaseUrl.ToString(),
            ["Providers:OpenAI:ApiKey"] = ConfiguredOpenAIKey,
        });
        _ = _gateway.BaseAddress; // the gateway runs (and has read Redis once) before Admin changes anything
        _provider.RespondOpenAIText("hi", new OpenAIUsage(10, 2));
    }

    public async Task DisposeAsync()
    {
        _adminClient.Dispose();
        await _gateway.DisposeAsync();
        await _admin.DisposeAsync();
        await _provider.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private async Task<string> AddAsync(string provider, object body)
    {
        using var response = await _adminClient.PostAsJsonAsync($"/admin/providers/{provider}/deployments", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetString()!;
    }

    private static ChatClient Chat(GatewayFactory gateway, string model) =>
        new(model, new System.ClientModel.ApiKeyCredential(GatewayFactory.ClientKey),
            new OpenAIClientOptions { Endpoint = new Uri(gateway.BaseAddress, "v1") });

    /// <summary>Sends one request (a new prompt each time, so rendezvous spreads them) and returns the key the provider saw.</summary>
    private async Task<string?> KeySeenAsync(ChatClient chat, string prompt)
    {
        var before = _provider.CallCount;
        await chat.CompleteChatAsync([new UserChatMessage(prompt)]);
        Assert.Equal(before + 1, _provider.CallCount);
        return FailoverTests.KeyOf(_provider.LastRequest!);
    }

    [Fact]
    public async Task A_deployment_added_in_admin_serves_the_next_requests_and_a_rotated_key_replaces_the_old_one_without_a_restart()
    {
        const string body = """{"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}]}""";
        using var client = _gateway.CreateGatewayClient();
        using (var before = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, before.StatusCode);
            Assert.Contains("provider_not_configured", await before.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        const string first = "sk-deepseek-from-admin-0001";
        var id = await AddAsync("deepseek", new { api_key = first, base_url = _provider.DeepSeekBaseUrl.ToString(), name = "ds-one" });
        var chat = Chat(_gateway, "deepseek-chat");
        var n = 0;
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var response = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(10), "the gateway to route deepseek to the Admin deployment");
        Assert.Equal(first, FailoverTests.KeyOf(_provider.LastRequest!));
        Assert.Equal(first, await KeySeenAsync(chat, $"again {n++}"));

        const string second = "sk-deepseek-rotated-0002";
        using (var rotate = await _adminClient.PostAsJsonAsync($"/admin/providers/deepseek/deployments/{id}/rotate", new { api_key = second }))
            Assert.Equal(HttpStatusCode.OK, rotate.StatusCode);
        await AdminTestHelpers.EventuallyAsync(async () => await KeySeenAsync(chat, $"after rotation {n++}") == second,
            TimeSpan.FromSeconds(10), "the rotated key to be used");
        // From then on only the new key.
        for (var i = 0; i < 5; i++) Assert.Equal(second, await KeySeenAsync(chat, $"settled {n++}"));

        using (var delete = await _adminClient.DeleteAsync($"/admin/providers/deepseek/deployments/{id}"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var response = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            return response.StatusCode == HttpStatusCode.BadRequest;
        }, TimeSpan.FromSeconds(10), "the deleted deployment to leave the gateway");
    }

    [Fact]
    public async Task An_admin_deployment_joins_the_configured_one_and_a_disabled_one_gets_no_traffic()
    {
        const string adminKey = "sk-openai-from-admin-0003";
        // A huge weight makes it the first choice of (practically) every new conversation once it is there.
        var id = await AddAsync("openai", new { api_key = adminKey, name = "oa-admin", weight = 1_000_000 });
        var chat = Chat(_gateway, "gpt-4o");
        var n = 0;
        await AdminTestHelpers.EventuallyAsync(async () => await KeySeenAsync(chat, $"join {n++}") == adminKey,
            TimeSpan.FromSeconds(10), "the Admin deployment to take traffic");

        // The configured deployment is still there, next to it, in the gateway's own list.
        using var client = _gateway.CreateGatewayClient();
        var listed = JsonDocument.Parse(await client.GetStringAsync("v1/tokenrouter/deployments")).RootElement.GetProperty("data");
        var ids = listed.EnumerateArray().Where(d => d.GetProperty("provider").GetString() == "openai").Select(d => d.GetProperty("id").GetString()).ToList();
        Assert.Contains("admin-openai-oa-admin", ids);
        Assert.Equal(2, ids.Count);

        using (var disable = await _adminClient.PatchJsonAsync($"/admin/providers/openai/deployments/{id}", """{"enabled": false}"""))
            Assert.Equal(HttpStatusCode.OK, disable.StatusCode);
        await AdminTestHelpers.EventuallyAsync(async () => await KeySeenAsync(chat, $"disable {n++}") == ConfiguredOpenAIKey,
            TimeSpan.FromSeconds(10), "the disabled deployment to stop taking traffic");
        for (var i = 0; i < 10; i++) Assert.Equal(ConfiguredOpenAIKey, await KeySeenAsync(chat, $"disabled {n++}"));
    }

    [Fact]
    public async Task The_rpm_limit_set_in_admin_is_enforced_at_the_gateway_with_a_429_and_retry_after()
    {
        await AddAsync("deepseek", new { api_key = "sk-deepseek-limited-0004", base_url = _provider.DeepSeekBaseUrl.ToString(), name = "ds-limited", rpm_limit = 1 });
        const string body = """{"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}]}""";
        using var client = _gateway.CreateGatewayClient();
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var response = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(10), "the gateway to route deepseek to the Admin deployment");

        // One request a minute: the next is refused without reaching the provider (a minute boundary allows one more).
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 3 && refused is null; i++)
        {
            var calls = _provider.CallCount;
            var response = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.Equal(calls, _provider.CallCount);
                refused = response;
            }
            else
            {
                response.Dispose();
            }
        }
        using (refused)
        {
            Assert.NotNull(refused);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Contains("deployments_saturated", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }
}
