using System.Buffers;
using System.Text;
using System.Text.Json;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Pricing;

/// <summary>
/// Writes price overrides to <see cref="RedisContract.PricesHash"/> (field = model, value = JSON with
/// <see cref="RedisContract.PriceFields"/>, USD per 1M tokens as invariant JSON numbers) and announces each changed
/// model on <see cref="RedisContract.PricesChangedChannel"/>.
/// </summary>
public sealed class PriceRedisWriter(IConnectionMultiplexer redis)
{
    private static readonly RedisKey Hash = RedisContract.PricesHash;
    private static readonly RedisChannel Channel = RedisChannel.Literal(RedisContract.PricesChangedChannel);

    public bool IsConnected => redis.IsConnected;

    public async Task SetAsync(ModelPrice price)
    {
        await redis.GetDatabase().HashSetAsync(Hash, price.Model, ToJson(price));
        await redis.GetSubscriber().PublishAsync(Channel, price.Model);
    }

    public async Task RemoveAsync(string model)
    {
        if (await redis.GetDatabase().HashDeleteAsync(Hash, model))
        {
            await redis.GetSubscriber().PublishAsync(Channel, model);
        }
    }

    /// <summary>
    /// Makes the hash equal to <paramref name="prices"/>: writes what differs, removes what Postgres no longer has, and
    /// announces only those models (gateways reload on each message). Returns how many overrides Redis now holds.
    /// </summary>
    public async Task<int> ReconcileAsync(IReadOnlyCollection<ModelPrice> prices)
    {
        var db = redis.GetDatabase();
        var current = (await db.HashGetAllAsync(Hash)).ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);
        var desired = prices.ToDictionary(p => p.Model, ToJson, StringComparer.Ordinal);

        var changed = desired.Where(d => !current.TryGetValue(d.Key, out var value) || value != d.Value).ToList();
        var removed = current.Keys.Where(model => !desired.ContainsKey(model)).ToList();
        if (changed.Count == 0 && removed.Count == 0)
        {
            return desired.Count;
        }

        // One MULTI/EXEC: a gateway reloading in between sees the old or the new table, never a mix.
        var transaction = db.CreateTransaction();
        if (changed.Count > 0)
        {
            _ = transaction.HashSetAsync(Hash, changed.Select(c => new HashEntry(c.Key, c.Value)).ToArray());
        }
        if (removed.Count > 0)
        {
            _ = transaction.HashDeleteAsync(Hash, removed.Select(m => (RedisValue)m).ToArray());
        }
        if (!await transaction.ExecuteAsync())
        {
            throw new RedisException("Redis did not commit the price overrides.");
        }

        var subscriber = redis.GetSubscriber();
        await Task.WhenAll(changed.Select(c => c.Key).Concat(removed).Select(model => subscriber.PublishAsync(Channel, model)));
        return desired.Count;
    }

    /// <summary>The contract's JSON value; numbers without the column's trailing zeros (2.500000 → 2.5).</summary>
    internal static string ToJson(ModelPrice price)
    {
        var buffer = new ArrayBufferWriter<byte>(160);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber(RedisContract.PriceFields.Input, price.InputPerMTok.Trimmed());
            json.WriteNumber(RedisContract.PriceFields.CachedInput, price.CachedInputPerMTok.Trimmed());
            json.WriteNumber(RedisContract.PriceFields.CacheWrite5m, price.CacheWrite5mPerMTok.Trimmed());
            json.WriteNumber(RedisContract.PriceFields.CacheWrite1h, price.CacheWrite1hPerMTok.Trimmed());
            json.WriteNumber(RedisContract.PriceFields.Output, price.OutputPerMTok.Trimmed());
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
