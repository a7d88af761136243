using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Tests.Accounting;

public sealed class QuotaEstimatorTests
{
    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(4, 1)]
    [InlineData(5, 2)]
    [InlineData(4000, 1000)]
    public void Prompt_estimate_is_a_token_per_four_bytes_rounded_up(int bytes, int tokens) =>
        Assert.Equal(tokens, QuotaEstimator.EstimatePromptTokens(bytes));

    [Fact]
    public void Worst_case_is_the_prompt_estimate_at_input_price_plus_max_tokens_at_output_price()
    {
        // gpt-4o: $2.50 in, $10 out per 1M: 1000 × 2.5e-6 + 100 × 1e-5.
        Assert.Equal(0.0035m, QuotaEstimator.WorstCaseCostUsd(PriceTable.ListPrices["gpt-4o"], 4000, 100, 4096));
    }

    [Fact]
    public void Without_max_tokens_the_configured_default_is_assumed()
    {
        var price = new ModelPrice(1m, 0.1m, 0, 0, 2m);
        Assert.Equal((1000 * 1m + 4096 * 2m) / 1_000_000m, QuotaEstimator.WorstCaseCostUsd(price, 4000, null, 4096));
        Assert.Equal((1000 * 1m + 4096 * 2m) / 1_000_000m, QuotaEstimator.WorstCaseCostUsd(price, 4000, 0, 4096));
    }

    [Fact]
    public void Anthropic_prompts_are_priced_at_the_dearest_cache_write_rate()
    {
        // claude-sonnet-4-5: a prompt may be billed entirely as 1 h cache writes ($6 per 1M), not $3.
        Assert.Equal((1000 * 6m + 10 * 15m) / 1_000_000m,
            QuotaEstimator.WorstCaseCostUsd(PriceTable.ListPrices["claude-sonnet-4-5"], 4000, 10, 4096));
    }

    [Fact]
    public void Nano_usd_conversion_rounds_reservations_up_and_quotas_down()
    {
        Assert.Equal(2, QuotaEstimator.ToNanosCeiling(0.0000000011m));
        Assert.Equal(1, QuotaEstimator.ToNanosFloor(0.0000000019m));
        Assert.Equal(2, QuotaEstimator.ToNanos(0.0000000015m));
        Assert.Equal(3_500_000, QuotaEstimator.ToNanos(0.0035m));
        Assert.Equal(0.0035m, QuotaEstimator.FromNanos(3_500_000));
        Assert.Equal(0, QuotaEstimator.ToNanosCeiling(-1m));
    }
}
