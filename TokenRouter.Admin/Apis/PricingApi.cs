using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.Pricing;

namespace TokenRouter.Admin.Apis;

/// <summary>
/// <c>/admin/pricing</c>: the price overrides in <c>model_prices</c>. Gateways ship list prices for the models they
/// know and overlay these (published to Redis); Admin does not know the shipped list, so it lists only overrides.
/// </summary>
public static class PricingApi
{
    public const int MaxModelLength = 200;
    public const decimal MaxPricePerMTok = 1_000_000m;
    private const int PriceScale = 6; // numeric(18,6)

    public static RouteGroupBuilder MapPricingApi(this RouteGroupBuilder admin)
    {
        var pricing = admin.MapGroup("/pricing").WithTags("Pricing");
        pricing.MapGet("", ListAsync).WithName("ListPrices")
            .WithSummary("Lists the price overrides (USD per 1M tokens) Admin publishes to the gateways.");
        // Catch-all: some model names contain '/'.
        pricing.MapGet("/{**model}", GetAsync).WithName("GetPrice");
        pricing.MapPut("/{**model}", PutAsync).WithName("SetPrice")
            .WithSummary("Creates or replaces a model's price override; gateways bill with it from the next request.")
            .WithDescription("Model names are stored lower-case (gateways match them case-insensitively). All five prices " +
                             "are required, in USD per 1M tokens, between 0 and 1000000 with at most 6 decimals. " +
                             "201 when the override is new, 200 when it replaced one.");
        pricing.MapDelete("/{**model}", DeleteAsync).WithName("DeletePrice")
            .WithSummary("Removes a model's override; gateways fall back to their shipped list price (or flag it unpriced).");
        return admin;
    }

    internal static async Task<Ok<PriceResponse[]>> ListAsync(AdminDbContext db, CancellationToken cancellationToken)
    {
        var prices = await db.ModelPrices.AsNoTracking().OrderBy(p => p.Model).ToListAsync(cancellationToken);
        return TypedResults.Ok(prices.Select(PriceResponse.From).ToArray());
    }

    internal static async Task<Results<Ok<PriceResponse>, NotFound>> GetAsync(
        string model, AdminDbContext db, CancellationToken cancellationToken)
    {
        var name = NormalizeModel(model);
        var price = await db.ModelPrices.AsNoTracking().SingleOrDefaultAsync(p => p.Model == name, cancellationToken);
        return price is null ? TypedResults.NotFound() : TypedResults.Ok(PriceResponse.From(price));
    }

    internal static async Task<Results<Created<PriceResponse>, Ok<PriceResponse>, ValidationProblem>> PutAsync(
        string model, PriceRequest request, AdminDbContext db, PricePublisher publisher, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var name = NormalizeModel(model);
        var errors = Validate(name, request);
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The price is not valid.");
        }

        var price = new ModelPrice
        {
            Model = name,
            InputPerMTok = request.Input!.Value,
            CachedInputPerMTok = request.CachedInput!.Value,
            CacheWrite5mPerMTok = request.CacheWrite5m!.Value,
            CacheWrite1hPerMTok = request.CacheWrite1h!.Value,
            OutputPerMTok = request.Output!.Value,
            UpdatedAt = TruncateToMicroseconds(time.GetUtcNow()),
        };

        // One atomic upsert, so two concurrent PUTs of a new model cannot both try to insert it. xmax = 0 only for a
        // row this statement inserted, which tells 201 from 200.
        var inserted = (await db.Database.SqlQuery<bool>($"""
            INSERT INTO model_prices (model, input_per_mtok, cached_input_per_mtok, cache_write5m_per_mtok,
                cache_write1h_per_mtok, output_per_mtok, updated_at)
            VALUES ({price.Model}, {price.InputPerMTok}, {price.CachedInputPerMTok}, {price.CacheWrite5mPerMTok},
                {price.CacheWrite1hPerMTok}, {price.OutputPerMTok}, {price.UpdatedAt})
            ON CONFLICT (model) DO UPDATE SET
                input_per_mtok = EXCLUDED.input_per_mtok,
                cached_input_per_mtok = EXCLUDED.cached_input_per_mtok,
                cache_write5m_per_mtok = EXCLUDED.cache_write5m_per_mtok,
                cache_write1h_per_mtok = EXCLUDED.cache_write1h_per_mtok,
                output_per_mtok = EXCLUDED.output_per_mtok,
                updated_at = EXCLUDED.updated_at
            RETURNING (xmax = 0) AS "Value"
            """).ToListAsync(cancellationToken)).Single();

        await publisher.PublishAsync(price);
        var response = PriceResponse.From(price);
        return inserted
            ? TypedResults.Created($"/admin/pricing/{Uri.EscapeDataString(name)}", response)
            : TypedResults.Ok(response);
    }

    internal static async Task<Results<NoContent, NotFound>> DeleteAsync(
        string model, AdminDbContext db, PricePublisher publisher, CancellationToken cancellationToken)
    {
        var name = NormalizeModel(model);
        var deleted = await db.ModelPrices.Where(p => p.Model == name).ExecuteDeleteAsync(cancellationToken);
        // Redis is cleaned even when Postgres had nothing: a delete whose Redis half was lost heals by repeating it.
        await publisher.RemoveAsync(name);
        return deleted == 0 ? TypedResults.NotFound() : TypedResults.NoContent();
    }

    /// <summary>Gateways look prices up case-insensitively, so one spelling is stored: trimmed, lower-case.</summary>
    internal static string NormalizeModel(string model) => model.Trim().ToLowerInvariant();

    internal static Dictionary<string, string[]> Validate(string model, PriceRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        if (model.Length == 0 || model.Length > MaxModelLength || model.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            errors["model"] = [$"The model name must be 1 to {MaxModelLength} characters without spaces or control characters."];
        }
        Check("input", request.Input);
        Check("cached_input", request.CachedInput);
        Check("cache_write_5m", request.CacheWrite5m);
        Check("cache_write_1h", request.CacheWrite1h);
        Check("output", request.Output);
        return errors;

        void Check(string field, decimal? value)
        {
            if (value is null)
            {
                errors[field] = ["Required (USD per 1M tokens; 0 if the provider does not charge it)."];
            }
            else if (value < 0 || value > MaxPricePerMTok)
            {
                errors[field] = [$"Must be between 0 and {MaxPricePerMTok:0} USD per 1M tokens."];
            }
            else if (decimal.Round(value.Value, PriceScale) != value.Value)
            {
                errors[field] = [$"At most {PriceScale} decimal places."];
            }
        }
    }

    private static DateTimeOffset TruncateToMicroseconds(DateTimeOffset value) =>
        new(value.UtcTicks - value.UtcTicks % 10, TimeSpan.Zero);
}
