using TokenRouter.Contracts;

namespace TokenRouter.Tests.Contracts;

/// <summary>The budget period math on a fake clock: calendar periods in a time zone across DST changes and year ends.</summary>
public sealed class BudgetPeriodsTests
{
    private static readonly TimeZoneInfo Berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static BudgetDuration Parse(string text)
    {
        Assert.True(BudgetDuration.TryParse(text, out var duration), text);
        return duration;
    }

    private static DateTimeOffset Utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) => new(y, mo, d, h, mi, s, TimeSpan.Zero);

    [Fact]
    public void Calendar_month_spanning_the_spring_dst_change_starts_and_ends_at_local_midnight()
    {
        // Berlin moves from UTC+1 to UTC+2 on 28 March 2027: March starts at 23:00 UTC the day before, April at 22:00 UTC.
        var clock = new FixedClock(Utc(2027, 3, 30, 12));
        var period = new BudgetPeriods(clock, Berlin).Current(Parse("1mo"));

        Assert.Equal(Utc(2027, 2, 28, 23), period.Start);
        Assert.Equal(Utc(2027, 3, 31, 22), period.End);
        Assert.Equal(TimeSpan.FromDays(31) - TimeSpan.FromHours(1), period.End - period.Start);
    }

    [Fact]
    public void Calendar_month_spanning_the_autumn_dst_change_is_an_hour_longer()
    {
        var clock = new FixedClock(Utc(2027, 10, 31, 1, 30)); // 02:30 local CET, after the change that night
        var period = new BudgetPeriods(clock, Berlin).Current(Parse("1mo"));

        Assert.Equal(Utc(2027, 9, 30, 22), period.Start);
        Assert.Equal(Utc(2027, 10, 31, 23), period.End);
        Assert.Equal(TimeSpan.FromDays(31) + TimeSpan.FromHours(1), period.End - period.Start);
    }

    [Fact]
    public void Calendar_month_at_year_end_resets_at_local_new_year_not_utc_new_year()
    {
        var periods = new BudgetPeriods(new FixedClock(default), Berlin);

        // 23:30 UTC on 31 Dec is already 00:30 on 1 Jan in Berlin: January.
        var january = periods.At(Parse("1mo"), Utc(2026, 12, 31, 23, 30));
        Assert.Equal(Utc(2026, 12, 31, 23), january.Start);
        Assert.Equal(Utc(2027, 1, 31, 23), january.End);

        // One second before local midnight: still December, and its end is January's start.
        var december = periods.At(Parse("1mo"), Utc(2026, 12, 31, 22, 59, 59));
        Assert.Equal(Utc(2026, 11, 30, 23), december.Start);
        Assert.Equal(january.Start, december.End);
    }

    [Fact]
    public void Calendar_month_in_utc_by_default_across_a_year_end()
    {
        var clock = new FixedClock(Utc(2026, 12, 31, 23, 59, 59));
        var periods = new BudgetPeriods(clock, TimeZoneInfo.Utc);
        var december = periods.Current(Parse("1mo"));
        Assert.Equal(Utc(2026, 12, 1), december.Start);
        Assert.Equal(Utc(2027, 1, 1), december.End);

        clock.Now = Utc(2027, 1, 1);
        var january = periods.Current(Parse("1mo"));
        Assert.Equal(Utc(2027, 1, 1), january.Start);
        Assert.Equal(Utc(2027, 2, 1), january.End);
    }

    [Fact]
    public void Calendar_day_on_the_spring_dst_change_lasts_23_hours()
    {
        var period = new BudgetPeriods(new FixedClock(default), Berlin).At(Parse("1d"), Utc(2027, 3, 28, 12));
        Assert.Equal(Utc(2027, 3, 27, 23), period.Start);
        Assert.Equal(Utc(2027, 3, 28, 22), period.End);
    }

    [Fact]
    public void Calendar_week_starts_on_monday_local_midnight_across_a_year_end()
    {
        // Friday 1 January 2027: the week began on Monday 28 December 2026.
        var period = new BudgetPeriods(new FixedClock(default), Berlin).At(Parse("1w"), Utc(2027, 1, 1, 12));
        Assert.Equal(Utc(2026, 12, 27, 23), period.Start);
        Assert.Equal(Utc(2027, 1, 3, 23), period.End);
        Assert.Equal(DayOfWeek.Monday, TimeZoneInfo.ConvertTime(period.Start, Berlin).DayOfWeek);
    }

    [Fact]
    public void A_skipped_local_midnight_starts_the_day_at_the_first_valid_local_time()
    {
        // Chile springs forward at midnight: 6 September 2026 has no 00:00–00:59, so the day starts at 01:00 (UTC-3).
        var santiago = TimeZoneInfo.FindSystemTimeZoneById("America/Santiago");
        var period = new BudgetPeriods(new FixedClock(default), santiago).At(Parse("1d"), Utc(2026, 9, 6, 15));
        Assert.Equal(Utc(2026, 9, 6, 4), period.Start);
        Assert.Equal(Utc(2026, 9, 7, 3), period.End);
    }

    [Fact]
    public void Go_style_durations_are_fixed_periods_aligned_on_the_unix_epoch()
    {
        var periods = new BudgetPeriods(new FixedClock(Utc(2030, 1, 1, 12, 0, 45)), Berlin);
        var period = periods.Current(Parse("20s"));
        Assert.Equal(Utc(2030, 1, 1, 12, 0, 40), period.Start);
        Assert.Equal(Utc(2030, 1, 1, 12, 1, 0), period.End);

        var month = periods.Current(Parse("720h"));
        Assert.Equal(0, month.Start.ToUnixTimeSeconds() % (720 * 3600));
        Assert.Equal(TimeSpan.FromHours(720), month.End - month.Start);
        Assert.Equal(TimeSpan.FromMinutes(90), Parse("1h30m").Length);
    }

    [Theory]
    [InlineData("")]
    [InlineData("0s")]
    [InlineData("2mo")]
    [InlineData("1y")]
    [InlineData("h")]
    [InlineData("10")]
    [InlineData("-1h")]
    public void Invalid_durations_are_refused(string text) => Assert.False(BudgetDuration.TryParse(text, out _));

    [Fact]
    public void Calendar_durations_parse_case_insensitively_to_their_kind()
    {
        Assert.Equal(BudgetPeriodKind.Day, Parse("1D").Kind);
        Assert.Equal(BudgetPeriodKind.Week, Parse("1w").Kind);
        Assert.Equal(BudgetPeriodKind.Month, Parse("1MO").Kind);
        Assert.Equal("1mo", Parse("1MO").Text);
        Assert.Equal(BudgetPeriodKind.Fixed, Parse("24h").Kind);
    }
}
