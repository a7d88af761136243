using System.Text.Json.Serialization;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Apis;

// Wire shapes of /admin/pricing: USD per 1M tokens, the same names as the Redis price overrides (RedisContract.PriceFields).

/// <summary>Body of <c>PUT /admin/pricing/{model}</c>. Every price is required (0 is a valid price, a missing one is not).</summary>
public sealed record PriceRequest(
    decimal? Input,
    decimal? CachedInput,
    [property: JsonPropertyName("cache_write_5m")] decimal? CacheWrite5m,
    [property: JsonPropertyName("cache_write_1h")] decimal? CacheWrite1h,
    decimal? Output);

/// <summary>A price override as Admin stores it and publishes it to the gateways.</summary>
public sealed record PriceResponse(
    string Model,
    decimal Input,
    decimal CachedInput,
    [property: JsonPropertyName("cache_write_5m")] decimal CacheWrite5m,
    [property: JsonPropertyName("cache_write_1h")] decimal CacheWrite1h,
    decimal Output,
    DateTimeOffset UpdatedAt)
{
    public static PriceResponse From(ModelPrice price) => new(
        price.Model, price.InputPerMTok.Trimmed(), price.CachedInputPerMTok.Trimmed(), price.CacheWrite5mPerMTok.Trimmed(),
        price.CacheWrite1hPerMTok.Trimmed(), price.OutputPerMTok.Trimmed(), price.UpdatedAt);
}
