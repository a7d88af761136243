using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace TokenRouter.Contracts;

/// <summary>Whether a budget period has a fixed length or follows the calendar.</summary>
public enum BudgetPeriodKind
{
    /// <summary>A Go-style duration (<c>30s</c>, <c>1h</c>, <c>720h</c>): periods of that length aligned on the unix epoch.</summary>
    Fixed,

    /// <summary><c>1d</c>: from midnight to midnight in the configured time zone.</summary>
    Day,

    /// <summary><c>1w</c>: from Monday 00:00 to the next Monday 00:00 in the configured time zone.</summary>
    Week,

    /// <summary><c>1mo</c>: from the 1st 00:00 to the next 1st 00:00 in the configured time zone.</summary>
    Month,
}

/// <summary>
/// A budget's <c>budget_duration</c>: after how long its spend starts again from zero. Admin stores the text, the key
/// hash in Redis carries it (<see cref="RedisContract.KeyFields.BudgetDuration"/>) and gateways and Admin compute the
/// same periods from it with <see cref="BudgetPeriods"/>.
/// </summary>
public sealed record BudgetDuration(BudgetPeriodKind Kind, TimeSpan Length, string Text)
{
    /// <summary>The shortest fixed period accepted.</summary>
    public static readonly TimeSpan MinimumLength = TimeSpan.FromSeconds(1);

    public const string Syntax = "a Go-style duration such as 30s, 1h, 24h or 720h, or a calendar period: 1d, 1w or 1mo";

    /// <summary>Parses <c>1d</c>, <c>1w</c>, <c>1mo</c> or a Go-style duration made of <c>h</c>, <c>m</c> and <c>s</c> parts (<c>1h30m</c>).</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out BudgetDuration? duration)
    {
        duration = null;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim().ToLowerInvariant();
        switch (s)
        {
            case "1d":
                duration = new BudgetDuration(BudgetPeriodKind.Day, TimeSpan.FromDays(1), s);
                return true;
            case "1w":
                duration = new BudgetDuration(BudgetPeriodKind.Week, TimeSpan.FromDays(7), s);
                return true;
            case "1mo":
                duration = new BudgetDuration(BudgetPeriodKind.Month, TimeSpan.FromDays(31), s);
                return true;
        }

        long totalSeconds = 0;
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
            if (i == start || i - start > 9) return false;
            var number = long.Parse(s.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture);
            if (i >= s.Length) return false;
            long unit;
            switch (s[i])
            {
                case 'h': unit = 3600; break;
                case 'm': unit = 60; break;
                case 's': unit = 1; break;
                default: return false;
            }
            i++;
            totalSeconds += number * unit;
            if (totalSeconds > 100L * 366 * 24 * 3600) return false;
        }
        var length = TimeSpan.FromSeconds(totalSeconds);
        if (length < MinimumLength) return false;
        duration = new BudgetDuration(BudgetPeriodKind.Fixed, length, s);
        return true;
    }

    public override string ToString() => Text;
}

/// <summary>One budget period: spend in it counts against the budget; at <see cref="End"/> it starts from zero again.</summary>
public readonly record struct BudgetPeriod(DateTimeOffset Start, DateTimeOffset End)
{
    /// <summary>The period's start in unix seconds: part of its Redis quota key (<see cref="RedisContract.QuotaKey(string, long?)"/>).</summary>
    public long StartUnixSeconds => Start.ToUnixTimeSeconds();
}

/// <summary>
/// The period math, in one place: which period of a <see cref="BudgetDuration"/> contains now. Fixed durations are
/// aligned on the unix epoch (every replica and Admin agree without sharing state); calendar periods start at local
/// midnight (day), Monday midnight (week) or the 1st at midnight (month) in <see cref="TimeZone"/>. A local midnight
/// skipped by a DST change starts the period at the first valid local time after it; an ambiguous one at its first
/// occurrence.
/// </summary>
public sealed class BudgetPeriods(TimeProvider time, TimeZoneInfo zone)
{
    public TimeZoneInfo TimeZone => zone;

    /// <summary>The period that contains the current time.</summary>
    public BudgetPeriod Current(BudgetDuration duration) => At(duration, time.GetUtcNow());

    /// <summary>The period that contains <paramref name="instant"/>.</summary>
    public BudgetPeriod At(BudgetDuration duration, DateTimeOffset instant)
    {
        if (duration.Kind == BudgetPeriodKind.Fixed)
        {
            var lengthTicks = duration.Length.Ticks;
            var sinceEpoch = instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
            var startTicks = sinceEpoch - (((sinceEpoch % lengthTicks) + lengthTicks) % lengthTicks);
            var start = DateTimeOffset.UnixEpoch.AddTicks(startTicks);
            return new BudgetPeriod(start, start.AddTicks(lengthTicks));
        }

        var local = TimeZoneInfo.ConvertTime(instant, zone).DateTime;
        var day = local.Date;
        DateTime startLocal, endLocal;
        switch (duration.Kind)
        {
            case BudgetPeriodKind.Day:
                startLocal = day;
                endLocal = day.AddDays(1);
                break;
            case BudgetPeriodKind.Week:
                var sinceMonday = ((int)day.DayOfWeek + 6) % 7;
                startLocal = day.AddDays(-sinceMonday);
                endLocal = startLocal.AddDays(7);
                break;
            default:
                startLocal = new DateTime(day.Year, day.Month, 1, 0, 0, 0, DateTimeKind.Unspecified);
                endLocal = startLocal.AddMonths(1);
                break;
        }
        return new BudgetPeriod(ToUtc(startLocal), ToUtc(endLocal));
    }

    /// <summary>A local wall-clock time as an instant: skipped times move forward to the first valid one, ambiguous ones take the first occurrence.</summary>
    private DateTimeOffset ToUtc(DateTime local)
    {
        local = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        var probe = local;
        while (zone.IsInvalidTime(probe)) probe = probe.AddMinutes(1);
        var offset = zone.IsAmbiguousTime(probe) ? zone.GetAmbiguousTimeOffsets(probe).Max() : zone.GetUtcOffset(probe);
        return new DateTimeOffset(probe, offset).ToUniversalTime();
    }

    /// <summary>Looks a time zone up by IANA or Windows id; "UTC" and empty mean UTC.</summary>
    public static bool TryFindTimeZone(string? id, [NotNullWhen(true)] out TimeZoneInfo? zone)
    {
        zone = null;
        if (string.IsNullOrWhiteSpace(id) || string.Equals(id.Trim(), "UTC", StringComparison.OrdinalIgnoreCase))
        {
            zone = TimeZoneInfo.Utc;
            return true;
        }
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(id.Trim());
            return true;
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            return false;
        }
    }
}
