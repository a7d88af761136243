using System.Globalization;
using System.Text;

namespace TokenRouter.Tests.Telemetry;

/// <summary>One sample line of a scrape: <c>name{label="value",…} value</c>.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public bool Matches(IEnumerable<(string Label, string Value)> labels) =>
        labels.All(l => Labels.TryGetValue(l.Label, out var v) && v == l.Value);

    public override string ToString() =>
        $"{Name}{{{string.Join(",", Labels.Select(l => $"{l.Key}=\"{l.Value}\""))}}} {Value.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// A minimal parser of the Prometheus text exposition format (0.0.4), enough for tests to read what an app's
/// <c>/metrics</c> exports: <c># TYPE</c> lines, sample lines with escaped label values, optional timestamps.
/// </summary>
public sealed class PrometheusScrape
{
    private PrometheusScrape(IReadOnlyList<PrometheusSample> samples, IReadOnlyDictionary<string, string> types)
    {
        Samples = samples;
        Types = types;
    }

    public IReadOnlyList<PrometheusSample> Samples { get; }

    /// <summary>Metric family → type (counter, gauge, histogram, …), from the <c># TYPE</c> lines.</summary>
    public IReadOnlyDictionary<string, string> Types { get; }

    /// <summary>Every sample name, e.g. <c>tokenrouter_upstream_ttfb_seconds_bucket</c>.</summary>
    public IReadOnlySet<string> Names => Samples.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);

    public IEnumerable<PrometheusSample> Series(string name, params (string Label, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && s.Matches(labels));

    /// <summary>Sum over every series of <paramref name="name"/> that has these labels; 0 when there is none.</summary>
    public double Sum(string name, params (string Label, string Value)[] labels) => Series(name, labels).Sum(s => s.Value);

    public static PrometheusScrape Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            if (line[0] == '#')
            {
                var parts = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
                if (parts is ["#", "TYPE", var family, var type]) types[family] = type.Trim();
                continue;
            }

            try
            {
                samples.Add(ParseSample(line));
            }
            catch (FormatException ex)
            {
                throw new FormatException($"Line {lineNumber} is not a Prometheus sample: {line}", ex);
            }
        }

        return new PrometheusScrape(samples, types);
    }

    private static PrometheusSample ParseSample(string line)
    {
        var i = 0;
        while (i < line.Length && line[i] is not ('{' or ' ')) i++;
        var name = line[..i];
        if (name.Length == 0) throw new FormatException("No metric name.");

        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                while (i < line.Length && line[i] is ' ' or ',') i++;
                if (i >= line.Length) throw new FormatException("Unterminated label set.");
                if (line[i] == '}')
                {
                    i++;
                    break;
                }

                var eq = line.IndexOf('=', i);
                if (eq < 0 || eq + 1 >= line.Length || line[eq + 1] != '"') throw new FormatException("Label without a quoted value.");
                var label = line[i..eq].Trim();
                i = eq + 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new FormatException("Unterminated label value.");
                    var c = line[i++];
                    if (c == '"') break;
                    if (c == '\\' && i < line.Length)
                    {
                        var escaped = line[i++];
                        value.Append(escaped switch { 'n' => '\n', _ => escaped });
                    }
                    else
                    {
                        value.Append(c);
                    }
                }

                labels[label] = value.ToString();
            }
        }

        var rest = line[i..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (rest.Length is < 1 or > 2) throw new FormatException("Expected a value and an optional timestamp.");
        return new PrometheusSample(name, labels, ParseValue(rest[0]));
    }

    private static double ParseValue(string value) => value switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture),
    };
}
