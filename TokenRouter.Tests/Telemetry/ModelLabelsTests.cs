using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Tests.Telemetry;

/// <summary>Client-given model names cannot grow the metrics or the log without bound.</summary>
public sealed class ModelLabelsTests
{
    private static readonly ModelLabels Labels = new(new PriceTable(Options.Create(new PricingOptions())));

    [Theory]
    [InlineData("gpt-4o", "gpt-4o")]
    [InlineData("sim-openai", "sim-openai")]
    [InlineData("(embeddings)", "(embeddings)")]
    [InlineData("gpt-4o-2024-08-06", "gpt-4o-2024-08-06")]
    [InlineData("gpt-unlisted-1234", ModelLabels.Other)]
    [InlineData("gpt-4o\0evil", ModelLabels.Other)]
    [InlineData("claude\n\"x\"", ModelLabels.Other)]
    [InlineData("", ModelLabels.Other)]
    public void Only_priced_printable_models_keep_their_name(string model, string label) =>
        Assert.Equal(label, Labels.For(model));

    [Fact]
    public void A_thousand_unknown_models_share_one_label()
    {
        var labels = Enumerable.Range(0, 1000).Select(i => Labels.For("gpt-x-" + new string('a', 1000) + i)).Distinct();
        Assert.Equal([ModelLabels.Other], labels);
    }

    [Fact]
    public void Variants_of_a_priced_model_keep_their_name_up_to_a_bound_then_share_the_listed_name()
    {
        var labels = new ModelLabels(new PriceTable(Options.Create(new PricingOptions())));
        var seen = Enumerable.Range(0, 1000).Select(i => labels.For("gpt-4o-variant-" + i)).ToList();

        Assert.Equal(ModelLabels.MaxVariants + 1, seen.Distinct().Count());
        Assert.Equal("gpt-4o-variant-3", seen[3]);
        Assert.Equal("gpt-4o", seen[^1]);
        Assert.Equal("gpt-4o-variant-3", labels.For("gpt-4o-variant-3")); // an admitted name stays stable
    }

    [Fact]
    public void Printable_replaces_control_characters_and_cuts_long_names()
    {
        Assert.Equal("gpt-4o?evil", ModelLabels.Printable("gpt-4o\0evil"));
        var cut = ModelLabels.Printable(new string('m', 1000));
        Assert.Equal(65, cut.Length);
        Assert.EndsWith("…", cut);
    }

    [Fact]
    public void Unpriced_warnings_name_a_bounded_number_of_models_then_summarise_once_a_minute()
    {
        var logger = new CountingLogger();
        var time = new FakeTimeProvider();
        var log = new UnpricedModelLog(logger, time);

        for (var i = 0; i < 1000; i++) log.Report("gpt-unknown-" + i);
        log.Report("gpt-unknown-0"); // already named: silent
        Assert.Equal(UnpricedModelLog.MaxNamed + 1, logger.Count); // the named ones and one summary

        time.Advance(TimeSpan.FromMinutes(1));
        log.Report("gpt-unknown-5000");
        Assert.Equal(UnpricedModelLog.MaxNamed + 2, logger.Count);
        Assert.DoesNotContain(logger.Messages, m => m.Contains('\0'));
    }

    private sealed class CountingLogger : ILogger<UnpricedModelLog>
    {
        public List<string> Messages { get; } = [];
        public int Count => Messages.Count;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Add(formatter(state, exception));
    }
}
