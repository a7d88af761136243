using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Tests.Telemetry;

public sealed class MetricTalliesTests
{
    [Fact]
    public void Dollar_totals_added_from_many_threads_at_once_lose_nothing()
    {
        var tally = new MetricTallies().For("openai", "gpt-4o");
        Parallel.For(0, 100_000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ => MetricTallies.Add(ref tally.Cost, 0.25));
        Assert.Equal(25_000d, tally.Cost);
    }

    [Fact]
    public void A_label_set_keeps_one_tally_and_only_series_added_to_are_observed()
    {
        var tallies = new MetricTallies();
        var first = tallies.For("openai", "gpt-4o");
        Assert.Same(first, tallies.For("openai", "gpt-4o"));
        Assert.NotSame(first, tallies.For("deepseek", "gpt-4o"));

        first.Requests[(ModelTally.StatusIndex(499) << 1) | 1]++;
        first.Tokens[1] += 7;

        var request = Assert.Single(tallies.Requests());
        Assert.Equal(1, request.Value);
        var tags = request.Tags.ToArray().ToDictionary(t => t.Key, t => t.Value);
        Assert.Equal("499", tags["status"]);
        Assert.Equal("true", tags["stream"]);
        Assert.Equal("openai", tags["provider"]);
        var tokens = Assert.Single(tallies.Tokens());
        Assert.Equal(7, tokens.Value);
        Assert.Contains(new KeyValuePair<string, object?>("kind", "cached_read"), tokens.Tags.ToArray());
        Assert.Empty(tallies.DeploymentAttempts());
    }
}
