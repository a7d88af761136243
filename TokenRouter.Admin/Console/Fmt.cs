using System.Globalization;

namespace TokenRouter.Admin.Console;

/// <summary>How the console writes money, tokens, ratios and times (invariant culture, UTC).</summary>
public static class Fmt
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>US dollars: cents for amounts of a cent or more, up to six decimals below that.</summary>
    public static string Usd(decimal value)
    {
        var sign = value < 0 ? "−" : "";
        var abs = Math.Abs(value);
        if (abs == 0)
        {
            return "$0.00";
        }
        if (abs >= 0.01m)
        {
            return sign + "$" + abs.ToString("#,##0.00", Invariant);
        }
        // Below a cent: up to six decimals, so one cheap request is not shown as $0.00.
        var text = Math.Round(abs, 6).ToString("0.######", Invariant);
        if (text == "0")
        {
            return sign + "<$0.000001";
        }
        return sign + "$" + text;
    }

    public static string Usd(decimal? value, string none = "—") => value is { } v ? Usd(v) : none;

    /// <summary>A whole number with thousands separators.</summary>
    public static string Count(long value) => value.ToString("#,##0", Invariant);

    public static string Count(int? value, string none = "—") => value is { } v ? Count(v) : none;

    /// <summary>Compact token counts: 950, 12.3k, 4.56M.</summary>
    public static string Tokens(long value) => value switch
    {
        < 10_000 => Count(value),
        < 1_000_000 => (value / 1_000d).ToString("0.#", Invariant) + "k",
        < 1_000_000_000 => (value / 1_000_000d).ToString("0.##", Invariant) + "M",
        _ => (value / 1_000_000_000d).ToString("0.##", Invariant) + "B",
    };

    public static string Percent(double ratio) => (ratio * 100).ToString("0.0", Invariant) + "%";

    public static string Day(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd", Invariant);

    public static string Time(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd HH:mm", Invariant) + " UTC";

    public static string Time(DateTimeOffset? value, string none = "—") => value is { } v ? Time(v) : none;

    /// <summary>The value of an <c>input type="datetime-local"</c> for a UTC time.</summary>
    public static string DateTimeLocal(DateTimeOffset? value) =>
        value is { } v ? v.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm", Invariant) : "";

    /// <summary>A decimal as typed in a form field: no trailing zeros, no grouping.</summary>
    public static string Plain(decimal? value) => value is { } v ? v.ToString("0.##########", Invariant) : "";

    public static string Plain(int? value) => value is { } v ? v.ToString(Invariant) : "";
}
