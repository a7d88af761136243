using System.Globalization;

namespace TokenRouter.Gateway.Configuration;

/// <summary>Parses the seed's Go-style durations (<c>500ms</c>, <c>90s</c>, <c>2m</c>, <c>1h30m</c>) and .NET TimeSpan text.</summary>
public static class DurationParser
{
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        if (text.Contains(':') && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value)) return true;

        var total = TimeSpan.Zero;
        var i = 0;
        var any = false;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.')) i++;
            if (start == i || !double.TryParse(text.AsSpan(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)) return false;
            var unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i])) i++;
            var unit = text.AsSpan(unitStart, i - unitStart);
            TimeSpan part;
            if (unit.SequenceEqual("ms")) part = TimeSpan.FromMilliseconds(number);
            else if (unit.SequenceEqual("s") || unit.IsEmpty) part = TimeSpan.FromSeconds(number);
            else if (unit.SequenceEqual("m")) part = TimeSpan.FromMinutes(number);
            else if (unit.SequenceEqual("h")) part = TimeSpan.FromHours(number);
            else return false;
            total += part;
            any = true;
        }
        value = total;
        return any;
    }
}
