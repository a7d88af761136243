using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Metering;

/// <summary>
/// Warns once per model that has no price, for the first <see cref="MaxNamed"/> such models; past that (client input
/// can name any number of models) one summary line a minute counts the rest, so the log and this set stay bounded.
/// </summary>
public sealed partial class UnpricedModelLog(ILogger<UnpricedModelLog> logger, TimeProvider time)
{
    public const int MaxNamed = 32;
    private static readonly TimeSpan SummaryInterval = TimeSpan.FromMinutes(1);

    private readonly Lock _lock = new();
    private readonly HashSet<string> _named = new(StringComparer.OrdinalIgnoreCase);
    private long _unnamed;
    private DateTimeOffset _nextSummary;

    public void Report(string model)
    {
        lock (_lock)
        {
            if (_named.Contains(model)) return;
            if (_named.Count < MaxNamed)
            {
                _named.Add(model);
                LogUnpriced(ModelLabels.Printable(model));
                return;
            }
            _unnamed++;
            var now = time.GetUtcNow();
            if (now < _nextSummary) return;
            LogManyUnpriced(_unnamed, MaxNamed);
            _unnamed = 0;
            _nextSummary = now + SummaryInterval;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} has no price: its usage is recorded as unpriced, not billed $0. Add it under Pricing:Models.")]
    private partial void LogUnpriced(string model);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} more requests named models with no price (beyond the first {Named} models, which were logged by name); their usage is recorded as unpriced.")]
    private partial void LogManyUnpriced(long count, int named);
}
