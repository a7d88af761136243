using System.Globalization;
using System.Net;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>A price Admin publishes to Redis bills at the gateway from the next request on.</summary>
public sealed class PriceOverridesTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;
    private GatewayFactory _gateway = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _provider = await FakeProvider.StartAsync();
        var settings = GatewayFactory.ProvidersAt(_provider);
        settings["ConnectionStrings:redis"] = _redis.ConnectionString;
        _gateway = new GatewayFactory(settings);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _provider.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task Published_override_changes_the_cost_of_the_next_request()
    {
        _provider.RespondOpenAIText("ok", new OpenAIUsage(Prompt: 1_000_000, Completion: 0));
        using var http = _gateway.CreateGatewayClient();
        const string body = """{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}""";

        using (var before = await http.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body)))
            Assert.Equal(2.5m, Cost(before)); // list price: $2.50 per 1M input tokens

        await using (var redis = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString))
        {
            await redis.GetDatabase().HashSetAsync("tokenrouter:prices", "gpt-4o",
                """{"input":1.0,"cached_input":0.1,"cache_write_5m":0,"cache_write_1h":0,"output":4.0}""");
            await redis.GetSubscriber().PublishAsync(RedisChannel.Literal("tokenrouter:prices:changed"), "gpt-4o");
        }

        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            using var after = await http.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(body));
            return after.StatusCode == HttpStatusCode.OK && Cost(after) == 1.0m;
        }, TimeSpan.FromSeconds(10), "the override to bill");
        Assert.True(_gateway.Service<PriceTable>().TryGet("gpt-4o-2024-08-06", out var dated));
        Assert.Equal(1.0m, dated.Input);
    }

    [Fact]
    public void Malformed_override_is_rejected_not_billed_as_zero()
    {
        Assert.False(RedisPriceOverrides.TryParse("""{"input":"free"}""", out _));
        Assert.False(RedisPriceOverrides.TryParse("not json", out _));
        Assert.False(RedisPriceOverrides.TryParse("""{"input":-1,"output":2}""", out _));
        Assert.True(RedisPriceOverrides.TryParse("""{"input":"1.5","output":2}""", out var price));
        Assert.Equal(1.5m, price.Input);
    }

    private static decimal Cost(HttpResponseMessage response) =>
        decimal.Parse(response.Headers.GetValues("x-tokenrouter-cost-usd").Single(), CultureInfo.InvariantCulture);
}
