using System.Text;
using System.Text.Json;
using StackExchange.Redis;
using TokenRouter.Gateway.Routing;
using TokenRouter.Tests.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary>Two gateway replicas sharing one real Redis: a deployment one replica cooled down is not asked by the other.</summary>
public sealed class CrossReplicaCooldownTests : IAsyncLifetime
{
    private const string Good = "sk-good-replicas-0123456789", Broken = "sk-broken-replicas-0123456789";
    private readonly string _brokenId = $"broken-{Guid.NewGuid():N}";
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;
    private readonly List<GatewayFactory> _gateways = [];

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.GetSharedAsync();
        _provider = await FakeProvider.StartAsync();
        var normal = FakeResponses.Auto();
        var revoked = FakeResponses.Error(401, FakeResponses.OpenAIErrorBody("Incorrect API key provided", "invalid_request_error", "invalid_api_key"));
        _provider.Respond((r, context) => FailoverTests.KeyOf(r) == Broken ? revoked(r, context) : normal(r, context));
    }

    public async Task DisposeAsync()
    {
        foreach (var gateway in _gateways) await gateway.DisposeAsync();
        await _provider.DisposeAsync();
    }

    private GatewayFactory Replica()
    {
        var settings = GatewayFactory.ProvidersAt(_provider);
        settings["ConnectionStrings:redis"] = _redis.ConnectionString;
        settings["Providers:OpenAI:ApiKey"] = null;
        // Unique names: the shared Redis outlives this test.
        settings["Providers:OpenAI:Deployments:0:Name"] = _brokenId;
        settings["Providers:OpenAI:Deployments:0:ApiKey"] = Broken;
        settings["Providers:OpenAI:Deployments:0:Weight"] = "1000000"; // every replica's first choice
        settings["Providers:OpenAI:Deployments:1:Name"] = $"good-{Guid.NewGuid():N}";
        settings["Providers:OpenAI:Deployments:1:ApiKey"] = Good;
        var gateway = new GatewayFactory(settings);
        _gateways.Add(gateway);
        _ = gateway.BaseAddress; // started, subscribed to cool-downs
        return gateway;
    }

    private static async Task<string?> HealthOfAsync(GatewayFactory gateway, string id)
    {
        using var client = gateway.CreateGatewayClient();
        using var doc = JsonDocument.Parse(await client.GetStringAsync("v1/tokenrouter/deployments"));
        return doc.RootElement.GetProperty("data").EnumerateArray().Single(d => d.GetProperty("id").GetString() == id).GetProperty("health").GetString();
    }

    private static async Task<System.Net.HttpStatusCode> AskAsync(GatewayFactory gateway, int i)
    {
        using var client = gateway.CreateGatewayClient();
        using var response = await client.PostAsync("v1/chat/completions", new StringContent(
            $$"""{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Replica test {{i}}"},{"role":"user","content":"hi"}]}""",
            Encoding.UTF8, "application/json"));
        return response.StatusCode;
    }

    [Fact]
    public async Task A_deployment_cooled_down_by_one_replica_is_skipped_by_the_other()
    {
        var a = Replica();
        var b = Replica();

        Assert.Equal(System.Net.HttpStatusCode.OK, await AskAsync(a, 0));
        Assert.Equal(1, _provider.Requests.Count(r => FailoverTests.KeyOf(r) == Broken));
        Assert.Equal("cooling_down", await HealthOfAsync(a, _brokenId));

        // The cool-down is in Redis (expiring with it) and reaches the other replica without a request asking Redis.
        var until = await (await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString)).GetDatabase()
            .StringGetAsync(RedisDeploymentCooldowns.KeyPrefix + _brokenId);
        Assert.True(until.HasValue);
        await Eventually.TrueAsync(async () => await HealthOfAsync(b, _brokenId) == "cooling_down", "replica B sees A's cool-down");

        for (var i = 1; i <= 5; i++) Assert.Equal(System.Net.HttpStatusCode.OK, await AskAsync(b, i));
        Assert.Equal(1, _provider.Requests.Count(r => FailoverTests.KeyOf(r) == Broken)); // B never asked the broken key
        Assert.Equal(6, _provider.Requests.Count(r => FailoverTests.KeyOf(r) == Good));
    }
}
