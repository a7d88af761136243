using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

public sealed class PricingApiTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private readonly HttpClient _client = fixture.Client;
    private IDatabase Redis => fixture.RedisClient.GetDatabase();

    [Fact]
    public async Task Put_creates_an_override_in_postgres_and_publishes_it_to_redis_with_a_notification()
    {
        var model = "Test-Model-" + Guid.NewGuid().ToString("N")[..8];
        var stored = model.ToLowerInvariant();
        var announced = await ListenAsync(stored);

        using var response = await _client.PutAsJsonAsync($"/admin/pricing/{model}",
            new { input = 2.5m, cached_input = 1.25m, cache_write_5m = 3.125m, cache_write_1h = 5m, output = 10m });
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(stored, body.GetProperty("model").GetString()); // one spelling: gateways match case-insensitively
        Assert.Equal(3.125m, body.GetProperty("cache_write_5m").GetDecimal());

        var json = (await Redis.HashGetAsync(PricesHash, stored)).ToString();
        var published = JsonDocument.Parse(json).RootElement;
        Assert.Equal(2.5m, published.GetProperty("input").GetDecimal());
        Assert.Equal(1.25m, published.GetProperty("cached_input").GetDecimal());
        Assert.Equal(3.125m, published.GetProperty("cache_write_5m").GetDecimal());
        Assert.Equal(5m, published.GetProperty("cache_write_1h").GetDecimal());
        Assert.Equal(10m, published.GetProperty("output").GetDecimal());
        Assert.Equal(5, published.EnumerateObject().Count());
        Assert.Equal(stored, await announced.WaitAsync(TimeSpan.FromSeconds(10)));

        // The gateway's own parser reads what Admin wrote (both sides of the contract).
        Assert.True(RedisPriceOverrides.TryParse(json, out var gatewayPrice));
        Assert.Equal(3.125m, gatewayPrice.CacheWrite5m);
        Assert.Equal(10m, gatewayPrice.Output);

        var listed = (await _client.GetJsonAsync("/admin/pricing")).EnumerateArray()
            .Single(p => p.GetProperty("model").GetString() == stored);
        Assert.Equal(2.5m, listed.GetProperty("input").GetDecimal());
        Assert.Equal(1, await ScalarAsync(fixture.DatabaseConnectionString,
            $"SELECT COUNT(*) FROM model_prices WHERE model = '{stored}' AND output_per_mtok = 10"));
    }

    [Fact]
    public async Task Put_again_replaces_the_override_and_answers_200()
    {
        var model = "replace-" + Guid.NewGuid().ToString("N")[..8];
        using (var first = await _client.PutAsJsonAsync($"/admin/pricing/{model}", Price(1m, 2m)))
        {
            Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        }

        using var second = await _client.PutAsJsonAsync($"/admin/pricing/{model}", Price(0.5m, 0.75m));

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var single = await _client.GetJsonAsync($"/admin/pricing/{model}");
        Assert.Equal(0.5m, single.GetProperty("input").GetDecimal());
        Assert.Equal(0.75m, single.GetProperty("output").GetDecimal());
        Assert.Equal(0.75m, JsonDocument.Parse((await Redis.HashGetAsync(PricesHash, model)).ToString())
            .RootElement.GetProperty("output").GetDecimal());
    }

    [Fact]
    public async Task Delete_removes_the_override_from_postgres_and_redis_and_notifies()
    {
        var model = "gone-" + Guid.NewGuid().ToString("N")[..8];
        using (var put = await _client.PutAsJsonAsync($"/admin/pricing/{model}", Price(1m, 2m)))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }
        var announced = await ListenAsync(model);

        using var delete = await _client.DeleteAsync($"/admin/pricing/{model}");

        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        Assert.False(await Redis.HashExistsAsync(PricesHash, model));
        Assert.Equal(model, await announced.WaitAsync(TimeSpan.FromSeconds(10)));
        using var get = await _client.GetAsync($"/admin/pricing/{model}");
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        using var again = await _client.DeleteAsync($"/admin/pricing/{model}");
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task Model_names_with_slashes_are_priced_as_one_model()
    {
        using var put = await _client.PutAsJsonAsync("/admin/pricing/vendor/family-1", Price(1m, 1m));

        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.True(await Redis.HashExistsAsync(PricesHash, "vendor/family-1"));
        using var delete = await _client.DeleteAsync("/admin/pricing/vendor/family-1");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }

    [Theory]
    [InlineData("""{"input":1,"cached_input":0.1,"cache_write_5m":0,"cache_write_1h":0}""", "output")]
    [InlineData("""{"input":-1,"cached_input":0.1,"cache_write_5m":0,"cache_write_1h":0,"output":1}""", "input")]
    [InlineData("""{"input":1,"cached_input":0.1234567,"cache_write_5m":0,"cache_write_1h":0,"output":1}""", "cached_input")]
    [InlineData("""{"input":1,"cached_input":0.1,"cache_write_5m":2000000,"cache_write_1h":0,"output":1}""", "cache_write_5m")]
    [InlineData("""{"input":1,"cached_input":0.1,"cache_write_5m":0,"cache_write_1h":null,"output":1}""", "cache_write_1h")]
    [InlineData("""{"input":"cheap","cached_input":0.1,"cache_write_5m":0,"cache_write_1h":0,"output":1}""", null)]
    [InlineData("""not json""", null)]
    public async Task Invalid_price_is_rejected_with_400_and_not_published(string body, string? invalidField)
    {
        var model = "invalid-" + Guid.NewGuid().ToString("N")[..8];

        using var response = await _client.PutAsync($"/admin/pricing/{model}", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonDocument.Parse(text).RootElement;
        if (invalidField is not null)
        {
            Assert.True(problem.GetProperty("errors").TryGetProperty(invalidField, out _), text);
        }
        Assert.False(await Redis.HashExistsAsync(PricesHash, model));
        Assert.Equal(0, await ScalarAsync(fixture.DatabaseConnectionString, $"SELECT COUNT(*) FROM model_prices WHERE model = '{model}'"));
    }

    private static object Price(decimal input, decimal output) =>
        new { input, cached_input = input / 10, cache_write_5m = 0m, cache_write_1h = 0m, output };

    /// <summary>Completes with the first price notification naming <paramref name="model"/> (channels span all Redis databases).</summary>
    private async Task<Task<string>> ListenAsync(string model)
    {
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var subscriber = fixture.RedisClient.GetSubscriber();
        var channel = RedisChannel.Literal(PricesChangedChannel);
        await subscriber.SubscribeAsync(channel, (_, message) =>
        {
            if (message == model)
            {
                received.TrySetResult(message!);
            }
        });
        return received.Task;
    }
}
