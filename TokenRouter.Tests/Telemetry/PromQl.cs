using System.Text.RegularExpressions;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// Finds the metric names a PromQL expression (as written in a Grafana dashboard, with <c>$variables</c>) selects.
/// Not a PromQL parser: it removes what cannot be a metric name — string literals, label matchers, range
/// selectors, grouping label lists, numbers, Grafana variables — and keeps identifiers that are not function calls
/// or keywords.
/// </summary>
public static partial class PromQl
{
    private static readonly HashSet<string> Keywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2",
    };

    public static IReadOnlySet<string> MetricNames(string expression)
    {
        var text = StringLiteral().Replace(expression, " ");
        text = LabelMatchers().Replace(text, " ");
        text = RangeSelector().Replace(text, " ");
        text = GroupingLabels().Replace(text, " ");
        text = GrafanaVariable().Replace(text, " ");
        text = Number().Replace(text, " ");

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match identifier in Identifier().Matches(text))
        {
            var rest = text.AsSpan(identifier.Index + identifier.Length).TrimStart();
            if (rest.StartsWith("(") || Keywords.Contains(identifier.Value)) continue; // a function or aggregation
            names.Add(identifier.Value);
        }

        return names;
    }

    /// <summary>The metric of a Grafana variable query such as <c>label_values(metric{…}, label)</c>.</summary>
    public static string? LabelValuesMetric(string query) =>
        LabelValues().Match(query) is { Success: true } m ? m.Groups[1].Value : null;

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\{[^{}]*\}")]
    private static partial Regex LabelMatchers();

    [GeneratedRegex(@"\[[^\[\]]*\]")]
    private static partial Regex RangeSelector();

    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", RegexOptions.IgnoreCase)]
    private static partial Regex GroupingLabels();

    [GeneratedRegex(@"\$\{[^}]*\}|\$\w+")]
    private static partial Regex GrafanaVariable();

    [GeneratedRegex(@"(?<![\w:])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w:])")]
    private static partial Regex Number();

    [GeneratedRegex(@"[A-Za-z_:][A-Za-z0-9_:]*")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")]
    private static partial Regex LabelValues();
}
