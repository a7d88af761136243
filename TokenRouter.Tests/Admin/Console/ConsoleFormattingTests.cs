using TokenRouter.Admin.Console.Components;
using ConsoleAuth = global::TokenRouter.Admin.Console.ConsoleAuth;
using Fmt = global::TokenRouter.Admin.Console.Fmt;
using KeyForm = global::TokenRouter.Admin.Console.KeyForm;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>The console's small pure parts: where sign-in may send the browser, how money is written, form parsing.</summary>
public sealed class ConsoleFormattingTests
{
    [Theory]
    [InlineData("/console/keys", "/console/keys")]
    [InlineData("/console/spend?range=7&key=abc", "/console/spend?range=7&key=abc")]
    [InlineData("/console", "/console")]
    [InlineData(null, "/console/spend")]
    [InlineData("", "/console/spend")]
    [InlineData("https://evil.example/console", "/console/spend")]
    [InlineData("//evil.example/console", "/console/spend")]
    [InlineData("/\\evil.example", "/console/spend")]
    [InlineData("/console\\..\\admin", "/console/spend")]
    [InlineData("/admin/api-keys", "/console/spend")]
    [InlineData("/consolex", "/console/spend")]
    [InlineData("/console/login?ReturnUrl=/console/keys", "/console/spend")]
    [InlineData("/console/logout", "/console/spend")]
    [InlineData("/console/keys\r\nSet-Cookie: x=y", "/console/spend")]
    public void Sign_in_returns_only_to_a_console_page_of_this_site(string? returnUrl, string expected) =>
        Assert.Equal(expected, ConsoleAuth.SafeReturnPath(returnUrl));

    [Theory]
    [InlineData("0", "$0.00")]
    [InlineData("1234.5", "$1,234.50")]
    [InlineData("0.01", "$0.01")]
    [InlineData("0.0042", "$0.0042")]
    [InlineData("0.00001234", "$0.000012")]
    [InlineData("0.0000001", "<$0.000001")]
    [InlineData("-0.25", "−$0.25")]
    public void Money_keeps_a_cheap_request_visible(string value, string expected) =>
        Assert.Equal(expected, Fmt.Usd(decimal.Parse(value, System.Globalization.CultureInfo.InvariantCulture)));

    [Theory]
    [InlineData(0.7, 1)]
    [InlineData(1.3, 2)]
    [InlineData(2.1, 2.5)]
    [InlineData(3, 5)]
    [InlineData(7, 10)]
    [InlineData(0.042, 0.05)]
    [InlineData(120, 200)]
    public void Chart_scales_end_on_a_round_number(double max, double expected) =>
        Assert.Equal(expected, BarChart.Nice(max), 9);

    [Fact]
    public void Key_form_reads_plain_amounts_and_utc_times_and_explains_the_rest()
    {
        var ok = new KeyForm { Name = "a", QuotaUsd = " $1,250.50 ", RpmLimit = "60", TpmLimit = "100,000", ExpiresAt = "2099-01-31T18:00" }.Parse();
        Assert.Empty(ok.Errors);
        Assert.Equal(1250.50m, ok.Quota);
        Assert.Equal(60, ok.Rpm);
        Assert.Equal(100_000, ok.Tpm);
        Assert.Equal(new DateTimeOffset(2099, 1, 31, 18, 0, 0, TimeSpan.Zero), ok.Expires);

        var empty = new KeyForm { Name = "a", QuotaUsd = "", RpmLimit = " ", TpmLimit = null, ExpiresAt = "" }.Parse();
        Assert.Empty(empty.Errors);
        Assert.Null(empty.Quota);
        Assert.Null(empty.Rpm);
        Assert.Null(empty.Expires);

        var bad = new KeyForm { Name = "a", QuotaUsd = "five", RpmLimit = "1.5", TpmLimit = "-", ExpiresAt = "tomorrow" }.Parse();
        Assert.Equal(["expires_at", "quota_usd", "rpm_limit", "tpm_limit"], bad.Errors.Keys.Order());
    }
}
