using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>
/// The console with a month of data (<see cref="ConsoleDemoData"/>) on an Admin of its own: every page fits a 390 px
/// phone and a 1280 px laptop without sideways scrolling, in light and dark, and the README's screenshots are taken
/// from it.
/// </summary>
public sealed class ConsoleLayoutTests(ConsoleLayoutTests.DemoFixture fixture) : IClassFixture<ConsoleLayoutTests.DemoFixture>
{
    /// <summary>Set to a folder (e.g. docs/console) to keep the screenshots; otherwise they go to a temporary folder.</summary>
    public const string ScreenshotsVariable = "TOKENROUTER_CONSOLE_SCREENSHOTS";

    public sealed class DemoFixture : IAsyncLifetime
    {
        public ConsoleFixture Console { get; } = new();
        public Dictionary<string, Guid> Keys { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            await Console.InitializeAsync();
            using var admin = Console.Admin.CreateAdminClient();
            Keys = await ConsoleDemoData.SeedAsync(admin, Console.DatabaseConnectionString, DateTimeOffset.UtcNow);
        }

        public Task DisposeAsync() => Console.DisposeAsync();
    }

    private string[] Pages =>
    [
        "/console/spend", "/console/spend?range=90", $"/console/spend?key={fixture.Keys["ci-pipeline"]}", "/console/keys",
        "/console/keys/new", $"/console/keys/{fixture.Keys["support-bot"]}", $"/console/keys/{fixture.Keys["bob-old-laptop"]}",
        $"/console/keys/{fixture.Keys["alice-laptop"]}/revoke", "/console/prices", "/console/prices/edit",
        "/console/prices/edit?model=openai%2Fft-support-bot", "/console/providers", "/console/teams",
    ];

    [Theory]
    [InlineData(390, 844, ColorScheme.Light)]
    [InlineData(390, 844, ColorScheme.Dark)]
    [InlineData(1280, 800, ColorScheme.Light)]
    public async Task Every_page_fits_the_screen_without_sideways_scrolling(int width, int height, ColorScheme scheme)
    {
        var page = await fixture.Console.NewPageAsync(width, height, scheme);
        // Errors in the browser's console: a script that failed, or anything the Content-Security-Policy blocked.
        var errors = new List<string>();
        page.Console += (_, message) => { if (message.Type == "error") errors.Add($"{page.Url}: {message.Text}"); };
        page.PageError += (_, error) => errors.Add($"{page.Url}: {error}");
        await page.GotoAsync("/console/login");
        await AssertFitsAsync(page, "/console/login", width);

        await ConsoleFixture.SignInAsync(page, "/console/spend");
        foreach (var path in Pages)
        {
            await page.GotoAsync(path);
            await Expect(page.Locator("main h1").First).ToBeVisibleAsync();
            await AssertFitsAsync(page, path, width);
        }

        // The rendered data is there, not only the frame: the month's headline, 30 bars per chart, the breakdowns.
        await page.GotoAsync("/console/spend");
        await Expect(page.Locator("#month-headline")).ToContainTextAsync("this month");
        await Expect(page.Locator("#chart-cost rect.bar")).ToHaveCountAsync(30);
        await Expect(page.Locator("#by-key")).ToContainTextAsync("ci-pipeline");
        await Expect(page.Locator("#by-model")).ToContainTextAsync("claude-sonnet-4-5");
        await Expect(page.Locator("#by-provider")).ToContainTextAsync("deepseek");
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Screenshots_of_the_main_pages_in_light_and_dark()
    {
        var folder = ConsoleFixture.ScreenshotFolder();
        foreach (var (scheme, suffix) in new[] { (ColorScheme.Light, "light"), (ColorScheme.Dark, "dark") })
        {
            var login = await fixture.Console.NewPageAsync(1000, 640, scheme);
            await login.GotoAsync("/console/login");
            await ConsoleFixture.ScreenshotAsync(login, folder, $"login-{suffix}.png");
            await login.Context.CloseAsync();

            var spend = await fixture.Console.NewPageAsync(1280, 1190, scheme);
            await ConsoleFixture.SignInAsync(spend, "/console/spend");
            await Expect(spend.Locator("#chart-ratio rect.bar")).ToHaveCountAsync(30);
            await ConsoleFixture.ScreenshotAsync(spend, folder, $"spend-{suffix}.png");
            await spend.Context.CloseAsync();

            // A browser opened at the shot's size rather than a resized one: no frame is pending when the shot is taken.
            var page = await fixture.Console.NewPageAsync(1280, 600, scheme);
            await ConsoleFixture.SignInAsync(page, "/console/keys");
            await Expect(page.Locator("main h1").First).ToBeVisibleAsync();
            await ConsoleFixture.ScreenshotAsync(page, folder, $"keys-{suffix}.png");
            await page.GotoAsync("/console/prices");
            await Expect(page.Locator("main h1").First).ToBeVisibleAsync();
            await ConsoleFixture.ScreenshotAsync(page, folder, $"prices-{suffix}.png");
            await page.Context.CloseAsync();

            var phone = await fixture.Console.NewPageAsync(390, 844, scheme);
            await ConsoleFixture.SignInAsync(phone, "/console/spend");
            await ConsoleFixture.ScreenshotAsync(phone, folder, $"spend-phone-{suffix}.png");
            await phone.Context.CloseAsync();
        }
    }

    private static async Task AssertFitsAsync(IPage page, string path, int width)
    {
        var widths = await page.EvaluateAsync<int[]>("() => [document.documentElement.scrollWidth, window.innerWidth]");
        var (scrollWidth, innerWidth) = (widths[0], widths[1]);
        Assert.True(scrollWidth <= innerWidth,
            $"{path} at {width} px scrolls sideways: the document is {scrollWidth} px wide in a {innerWidth} px window");
    }
}
