using System.Globalization;
using System.Text.Json;
using StackExchange.Redis;
using TokenRouter.Contracts;

namespace TokenRouter.Gateway.Accounting;

/// <summary>
/// Keeps the <see cref="PriceTable"/> in step with the price overrides Admin publishes to Redis: loaded at start-up
/// and reloaded whenever Admin announces a change, so a price edited in Admin bills from the next request on.
/// </summary>
public sealed partial class RedisPriceOverrides(IConnectionMultiplexer redis, PriceTable prices, ILogger<RedisPriceOverrides> logger)
    : IHostedService
{
    private readonly SemaphoreSlim _reload = new(1, 1);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(RedisContract.PricesChangedChannel), (_, _) => _ = ReloadAsync());
        await ReloadAsync();
    }

    public Task StopAsync(CancellationToken cancellationToken) =>
        redis.GetSubscriber().UnsubscribeAsync(RedisChannel.Literal(RedisContract.PricesChangedChannel));

    public async Task ReloadAsync()
    {
        await _reload.WaitAsync();
        try
        {
            var entries = await redis.GetDatabase().HashGetAllAsync(RedisContract.PricesHash);
            var overrides = new Dictionary<string, ModelPrice>(StringComparer.OrdinalIgnoreCase);
            foreach (var entry in entries)
            {
                if (TryParse(entry.Value.ToString(), out var price)) overrides[entry.Name.ToString()] = price;
                else LogBadPrice(entry.Name.ToString());
            }
            prices.SetOverrides(overrides);
            LogLoaded(overrides.Count);
        }
        catch (RedisException ex)
        {
            // The shipped and configured prices keep billing; the next change notification retries.
            LogUnavailable(ex.GetType().Name);
        }
        finally
        {
            _reload.Release();
        }
    }

    public static bool TryParse(string json, out ModelPrice price)
    {
        price = null!;
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (!Get(root, RedisContract.PriceFields.Input, out var input) || !Get(root, RedisContract.PriceFields.Output, out var output)) return false;
            Get(root, RedisContract.PriceFields.CachedInput, out var cached);
            Get(root, RedisContract.PriceFields.CacheWrite5m, out var write5m);
            Get(root, RedisContract.PriceFields.CacheWrite1h, out var write1h);
            price = new ModelPrice(input, cached, write5m, write1h, output);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }

        static bool Get(JsonElement root, string name, out decimal value)
        {
            value = 0;
            if (!root.TryGetProperty(name, out var v)) return false;
            return v.ValueKind == JsonValueKind.Number ? v.TryGetDecimal(out value) && value >= 0
                : v.ValueKind == JsonValueKind.String && decimal.TryParse(v.GetString(), NumberStyles.Number, CultureInfo.InvariantCulture, out value) && value >= 0;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded {Count} price overrides from Admin")]
    private partial void LogLoaded(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ignoring the malformed price override for model {Model}")]
    private partial void LogBadPrice(string model);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Price overrides could not be read from Redis ({Error}); billing with shipped and configured prices")]
    private partial void LogUnavailable(string error);
}
