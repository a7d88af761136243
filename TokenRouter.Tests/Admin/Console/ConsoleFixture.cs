using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>
/// What the console's browser tests run against: Admin on a real Kestrel port (a browser cannot reach a TestServer),
/// on the run's PostgreSQL and a Redis of its own; a gateway on the same Redis in front of a fake provider, so usage
/// arrives the way it does in production (gateway → Redis usage stream → Admin's ledger); and Debian's headless
/// Chromium driven by Playwright. One of each for the whole <see cref="ConsoleCollection"/>.
/// </summary>
public sealed class ConsoleFixture : IAsyncLifetime
{
    /// <summary>Override with the path of another Chromium build; never downloaded (the machine has no such network).</summary>
    public const string ChromiumVariable = "TOKENROUTER_TEST_CHROMIUM";
    public const string DefaultChromium = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    // Generous: CI runs the browser tests on two cores alongside the rest of the suite.
    static ConsoleFixture() => Assertions.SetDefaultExpectTimeout(30_000);

    public PostgresServer Postgres { get; private set; } = null!;
    public RedisServer Redis { get; private set; } = null!;
    public FakeProvider Provider { get; private set; } = null!;
    public AdminAppFactory Admin { get; private set; } = null!;
    public GatewayFactory Gateway { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public string DatabaseConnectionString { get; private set; } = null!;

    /// <summary>Admin's own address, e.g. <c>http://127.0.0.1:PORT</c> (no trailing slash).</summary>
    public string AdminUrl { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var chromium = Environment.GetEnvironmentVariable(ChromiumVariable) is { Length: > 0 } configured ? configured : DefaultChromium;
        if (!File.Exists(chromium))
        {
            throw new InvalidOperationException(
                $"The console's browser tests need Chromium at {chromium} (Debian: apt-get install -y chromium; .ci/run " +
                $"installs it), or {ChromiumVariable} set to another Chromium executable.");
        }

        Postgres = await PostgresServer.GetSharedAsync();
        Redis = await RedisServer.StartNewAsync();
        Provider = await FakeProvider.StartAsync();
        DatabaseConnectionString = await Postgres.CreateDatabaseAsync("console");

        Admin = new AdminAppFactory(AdminAppFactory.SettingsFor(DatabaseConnectionString, Redis.ConnectionString));
        // Listen() rather than UseKestrel(0): the port-rewriting overload races Kestrel's start (dotnet/aspnetcore#67714).
        Admin.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        Admin.StartServer();
        AdminUrl = Admin.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First().Replace("[::]", "127.0.0.1").TrimEnd('/');

        var gatewaySettings = GatewayFactory.ProvidersAt(Provider);
        gatewaySettings["ConnectionStrings:redis"] = Redis.ConnectionString;
        gatewaySettings["Gateway:AuthCacheTtl"] = "00:00:01";
        Gateway = new GatewayFactory(gatewaySettings);
        _ = Gateway.BaseAddress; // start it now, not in the middle of a test's timing

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            // This machine's network reaches nothing but the loopback: keep Chromium from trying.
            Args =
            [
                "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
            ],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        if (Gateway is not null) await Gateway.DisposeAsync();
        if (Admin is not null) await Admin.DisposeAsync();
        if (Provider is not null) await Provider.DisposeAsync();
        if (Redis is not null) await Redis.DisposeAsync();
    }

    /// <summary>A fresh browser (no cookies) at the given size and colour scheme, with the console's clock in UTC.</summary>
    public async Task<IPage> NewPageAsync(int width = 1280, int height = 900, ColorScheme colorScheme = ColorScheme.Light)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = AdminUrl,
            ViewportSize = new ViewportSize { Width = width, Height = height },
            ColorScheme = colorScheme,
            Locale = "en-US",
            TimezoneId = "UTC",
        });
        context.SetDefaultTimeout(30_000);
        return await context.NewPageAsync();
    }

    /// <summary>
    /// Saves a PNG of the page into <paramref name="folder"/>. Chromium's <c>Page.captureScreenshot</c> now and then
    /// answers "Unable to capture screenshot" when no compositor frame is ready (seen once in CI, on a loaded box, and
    /// not reproducible here); so it waits for two animation frames and tries once more before failing.
    /// </summary>
    public static async Task<string> ScreenshotAsync(IPage page, string folder, string name, bool fullPage = false)
    {
        var path = Path.Combine(folder, name);
        var options = new PageScreenshotOptions { Path = path, FullPage = fullPage, Animations = ScreenshotAnimations.Disabled };
        try
        {
            await page.ScreenshotAsync(options);
        }
        catch (PlaywrightException e) when (e.Message.Contains("Unable to capture screenshot", StringComparison.Ordinal))
        {
            await page.EvaluateAsync("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))");
            await page.ScreenshotAsync(options);
        }

        var bytes = await File.ReadAllBytesAsync(path);
        Assert.True(bytes.Length > 10_000, $"{path} is suspiciously small ({bytes.Length} bytes)");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        return path;
    }

    /// <summary>The folder for the README's screenshots (<see cref="ConsoleLayoutTests.ScreenshotsVariable"/>, e.g. docs/console), else a temporary one.</summary>
    public static string ScreenshotFolder()
    {
        var folder = Environment.GetEnvironmentVariable(ConsoleLayoutTests.ScreenshotsVariable) is { Length: > 0 } configured
            ? Path.GetFullPath(configured)
            : Directory.CreateTempSubdirectory("tokenrouter-console-").FullName;
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>Signs in through the login page and waits for the console.</summary>
    public static async Task SignInAsync(IPage page, string returnPath = "/console/keys")
    {
        await page.GotoAsync(returnPath);
        await page.GetByLabel("Admin key").FillAsync(AdminAppFactory.AdminKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        try
        {
            await page.WaitForURLAsync(url => !url.Contains("/console/login", StringComparison.Ordinal));
        }
        catch (TimeoutException e)
        {
            var state = await page.EvaluateAsync<string>("""
                () => document.readyState + ' | pending: ' + performance.getEntriesByType('resource')
                    .filter(r => r.responseEnd === 0).map(r => r.name).join(', ') + ' | all: ' +
                    performance.getEntriesByType('resource').map(r => r.name + ' ' + Math.round(r.duration)).join(', ')
                """);
            var text = (await page.Locator("body").InnerTextAsync()).ReplaceLineEndings(" / ");
            throw new TimeoutException($"Still waiting after signing in at {page.Url} ({state}); the page says: {text}", e);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ConsoleCollection : ICollectionFixture<ConsoleFixture>
{
    public const string Name = "Admin console in a browser";
}
