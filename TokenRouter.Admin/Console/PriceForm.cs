using System.Globalization;
using TokenRouter.Admin.Apis;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Console;

/// <summary>A price override as typed (USD per 1M tokens), checked by <see cref="PricingApi.Validate"/> after parsing.</summary>
public sealed class PriceForm
{
    public string? Model { get; set; }
    public string? Input { get; set; }
    public string? CachedInput { get; set; }
    public string? CacheWrite5m { get; set; }
    public string? CacheWrite1h { get; set; }
    public string? Output { get; set; }

    public static PriceForm From(ModelPrice price) => new()
    {
        Model = price.Model,
        Input = Fmt.Plain(price.InputPerMTok.Trimmed()),
        CachedInput = Fmt.Plain(price.CachedInputPerMTok.Trimmed()),
        CacheWrite5m = Fmt.Plain(price.CacheWrite5mPerMTok.Trimmed()),
        CacheWrite1h = Fmt.Plain(price.CacheWrite1hPerMTok.Trimmed()),
        Output = Fmt.Plain(price.OutputPerMTok.Trimmed()),
    };

    /// <summary>The request for PUT /admin/pricing/{model}, or field errors keyed like the API's.</summary>
    public (PriceRequest Request, Dictionary<string, string[]> Errors) Parse()
    {
        var errors = new Dictionary<string, string[]>();
        var request = new PriceRequest(
            Number(Input, "input", errors),
            Number(CachedInput, "cached_input", errors),
            Number(CacheWrite5m, "cache_write_5m", errors),
            Number(CacheWrite1h, "cache_write_1h", errors),
            Number(Output, "output", errors));
        return (request, errors);
    }

    private static decimal? Number(string? text, string field, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null; // the API's own "Required" message
        }
        if (decimal.TryParse(text.Trim().TrimStart('$').Trim(), NumberStyles.AllowDecimalPoint | NumberStyles.AllowThousands,
                CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }
        errors[field] = ["Enter USD per 1M tokens, like 2.5 (0 if the provider does not charge it)."];
        return null;
    }
}
