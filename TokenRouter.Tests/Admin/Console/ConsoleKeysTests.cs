using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;
using static TokenRouter.Tests.Dedup.DedupTestKit;
using Fmt = global::TokenRouter.Admin.Console.Fmt;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>
/// What an operator does in the console, end to end: create a key for a colleague, see it in the list, see its spend
/// and savings once requests went through the gateway, change its limits, disable it, revoke it and see the gateway
/// refuse it; and edit the price overrides.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleKeysTests(ConsoleFixture fixture)
{
    private const string ChatPath = "v1/chat/completions";

    [Fact]
    public async Task A_key_created_in_the_console_spends_through_the_gateway_shows_its_savings_and_is_refused_once_revoked()
    {
        var page = await fixture.NewPageAsync();
        await page.Context.GrantPermissionsAsync(["clipboard-read", "clipboard-write"], new() { Origin = fixture.AdminUrl });
        await ConsoleFixture.SignInAsync(page, "/console/keys");

        // Create: the secret is shown once, with a copy button.
        await page.GetByRole(AriaRole.Link, new() { Name = "New key" }).ClickAsync();
        await page.GetByLabel("Name").FillAsync("colleague");
        await page.GetByLabel("Quota (USD, lifetime)").FillAsync("5");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Key “colleague” created" })).ToBeVisibleAsync();
        var secret = await page.GetByLabel("The new key").InputValueAsync();
        Assert.StartsWith("sk-tr-", secret);
        var copy = page.GetByRole(AriaRole.Button, new() { Name = "Copy" });
        await copy.ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Copied");
        Assert.Equal(secret, await page.EvaluateAsync<string>("() => navigator.clipboard.readText()"));

        // Shown once: the list has only the prefix, and reloading the page does not show the secret again.
        await page.GetByRole(AriaRole.Link, new() { Name = "Back to keys" }).ClickAsync();
        var row = page.Locator("tr", new() { Has = page.GetByRole(AriaRole.Link, new() { Name = "colleague", Exact = true }) });
        await Expect(row).ToContainTextAsync(secret[..12] + "…");
        await Expect(row).ToContainTextAsync("$5.00");
        await Expect(row.Locator(".badge")).ToHaveTextAsync("Active");
        Assert.DoesNotContain(secret, await page.ContentAsync());

        // Requests through the gateway with the new key: three answered by the provider with most of the prompt from
        // its cache; one more to learn a request's hash, then three copies of it at once, of which two ride on the
        // first one's upstream call (dedup). Seven requests in all.
        fixture.Provider.RespondOpenAIText("Hello", new OpenAIUsage(Prompt: 20_000, Completion: 200, Cached: 15_000));
        using var client = fixture.Gateway.CreateGatewayClient(secret);
        var costs = 0m;
        for (var i = 0; i < 3; i++)
        {
            var reply = await PostAsync(client, ChatPath, OpenAIChat($"Question {i}", stream: false));
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            costs += decimal.Parse(reply.Header("x-tokenrouter-cost-usd")!, CultureInfo.InvariantCulture);
        }
        var shared = OpenAIChat("The same question from three places", stream: false);
        var hash = await FullHashOfAsync(client, ChatPath, shared);
        await WaitForFlightEndAsync(fixture.Redis, hash);
        fixture.Provider.CloseGate();
        var concurrent = Enumerable.Range(0, 3).Select(_ => PostAsync(client, ChatPath, shared)).ToArray();
        await fixture.Provider.WaitForWaitingAtGateAsync(1, Bounded);
        await WaitForListenersAsync(hash, 3, fixture.Gateway);
        fixture.Provider.OpenGate();
        var replies = await Task.WhenAll(concurrent);
        Assert.Equal(2, replies.Count(r => r.Header("x-tokenrouter-deduplicated") == "true"));

        // Spend and savings reach the charts through the Redis usage stream and Admin's ledger, within seconds.
        await page.GotoAsync("/console/spend");
        await AdminTestHelpers.EventuallyAsync(async () =>
        {
            await page.ReloadAsync();
            // The page's reports are separate queries: a ledger batch landing between them shows in some, not yet in others.
            return (await page.Locator("#by-key").TextContentAsync() ?? "").Contains("colleague", StringComparison.Ordinal)
                   && await page.Locator("#by-key tr", new() { HasText = "colleague" }).Locator("td").Nth(1).TextContentAsync() == "7"
                   && await page.Locator("#range-cache-savings").TextContentAsync() != "$0.00"
                   && await page.Locator("#range-dedup-savings").TextContentAsync() != "$0.00";
        }, TimeSpan.FromSeconds(20), "the colleague's 7 requests and the range's savings on the spend page");
        var keyRow = page.Locator("#by-key tr", new() { HasText = "colleague" });
        var cells = await keyRow.Locator("td").AllTextContentsAsync();
        Assert.StartsWith("colleague", cells[0].Trim());
        Assert.Equal("7", cells[1]);
        Assert.NotEqual("$0.00", cells[2]);
        Assert.NotEqual("$0.00", cells[3]); // cache savings
        Assert.NotEqual("$0.00", cells[4]); // dedup savings
        Assert.Equal("75.0%", cells[5]);    // 15,000 of 20,000 prompt tokens from the provider's cache
        await Expect(page.Locator("#range-cache-savings")).Not.ToHaveTextAsync("$0.00");
        await Expect(page.Locator("#range-dedup-savings")).Not.ToHaveTextAsync("$0.00");
        await Expect(page.Locator("#month-headline")).ToContainTextAsync("this month");
        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        await Expect(page.Locator("#chart-cost rect.bar").Last.Locator("title")).Not.ToHaveTextAsync($"{today}: $0.00");
        await Expect(page.Locator("#chart-dedup rect.bar").Last.Locator("title")).Not.ToHaveTextAsync($"{today}: $0.00");
        await Expect(page.Locator("#chart-ratio rect.bar").Last.Locator("title")).Not.ToHaveTextAsync($"{today}: 0.0%");

        // The key's own page: the ledger's spend is what the gateway reported. Five requests reached the provider,
        // all with the same usage: the first three, the one that learnt the shared request's hash, and the leader of
        // the three identical ones (the two followers cost nothing).
        await page.Locator("#by-key").GetByRole(AriaRole.Link, new() { Name = "colleague" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "colleague" })).ToBeVisibleAsync();
        await Expect(page.Locator(".stat").First).ToContainTextAsync(Fmt.Usd(costs / 3 * 5));

        // Revoke, with a confirmation step.
        await page.GetByRole(AriaRole.Link, new() { Name = "Revoke…" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Revoke “colleague”?" })).ToBeVisibleAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Revoke key" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/console/keys/[0-9a-f-]{36}\\?revoked=1$"));
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("The key is revoked.");
        await Expect(page.Locator("h1 .badge")).ToHaveTextAsync("Revoked");

        // The gateway refuses it (within its auth cache TTL, 1 s here; the change notification usually evicts sooner).
        await AdminTestHelpers.EventuallyAsync(async () =>
            (await PostAsync(client, ChatPath, OpenAIChat("after revocation", stream: false))).Status == HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(10), "the revoked key to be refused at the gateway");

        await page.GotoAsync("/console/keys");
        await Expect(row.Locator(".badge")).ToHaveTextAsync("Revoked");
    }

    [Fact]
    public async Task Limits_and_expiry_are_edited_and_a_disabled_key_is_refused_until_enabled_again()
    {
        using var admin = fixture.Admin.CreateAdminClient();
        var created = await admin.CreateKeyAsync(new { name = "limits" });
        var id = created.GetProperty("id").GetString()!;
        var secret = created.GetProperty("key").GetString()!;

        var page = await fixture.NewPageAsync(colorScheme: ColorScheme.Dark);
        await ConsoleFixture.SignInAsync(page, $"/console/keys/{id}");

        // A typo is explained next to its field and nothing is saved.
        await page.GetByLabel("Quota (USD, lifetime)").FillAsync("twelve");
        await page.GetByLabel("Requests per minute").FillAsync("0");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save changes" }).ClickAsync();
        await Expect(page.Locator("#quota_usd-error")).ToContainTextAsync("Enter an amount in US dollars");
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Nothing was saved");

        await page.GetByLabel("Quota (USD, lifetime)").FillAsync("12.5");
        await page.GetByLabel("Requests per minute").FillAsync("0");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save changes" }).ClickAsync();
        await Expect(page.Locator("#rpm_limit-error")).ToContainTextAsync("must be positive"); // the API's own check

        await page.GetByLabel("Name").FillAsync("limits-renamed");
        await page.GetByLabel("Requests per minute").FillAsync("60");
        await page.GetByLabel("Tokens per minute").FillAsync("100,000");
        await page.GetByLabel("Expires (UTC)").FillAsync("2099-01-31T18:00");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save changes" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status))
            .ToContainTextAsync("Saved (name, quota, requests per minute, tokens per minute, expiry).");

        var stored = await admin.GetJsonAsync($"/admin/api-keys/{id}");
        Assert.Equal("limits-renamed", stored.GetProperty("name").GetString());
        Assert.Equal(12.5m, stored.GetProperty("quota_usd").GetDecimal());
        Assert.Equal(60, stored.GetProperty("rpm_limit").GetInt32());
        Assert.Equal(100_000, stored.GetProperty("tpm_limit").GetInt32());
        Assert.Equal(new DateTimeOffset(2099, 1, 31, 18, 0, 0, TimeSpan.Zero), stored.GetProperty("expires_at").GetDateTimeOffset());

        // Clearing a field removes the limit, as a PATCH with null does.
        await page.GetByLabel("Tokens per minute").FillAsync("");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save changes" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("Saved (tokens per minute).");
        Assert.Equal(System.Text.Json.JsonValueKind.Null, (await admin.GetJsonAsync($"/admin/api-keys/{id}")).GetProperty("tpm_limit").ValueKind);

        await page.GotoAsync("/console/keys");
        var row = page.Locator("tr", new() { Has = page.GetByRole(AriaRole.Link, new() { Name = "limits-renamed", Exact = true }) });
        await Expect(row).ToContainTextAsync("$12.50");
        await Expect(row.Locator("td[data-label=RPM]")).ToHaveTextAsync("60");
        await Expect(row.Locator("td[data-label=TPM]")).ToHaveTextAsync("—");

        // Disable: the gateway refuses the key; enable: it works again.
        fixture.Provider.RespondOpenAIText("ok", new OpenAIUsage(100, 5));
        using var client = fixture.Gateway.CreateGatewayClient(secret);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(client, ChatPath, OpenAIChat("before", stream: false))).Status);

        await row.GetByRole(AriaRole.Link).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Disable key" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("The key is disabled");
        await Expect(page.Locator("h1 .badge")).ToHaveTextAsync("Disabled");
        await AdminTestHelpers.EventuallyAsync(async () =>
            (await PostAsync(client, ChatPath, OpenAIChat("while disabled", stream: false))).Status == HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(10), "the disabled key to be refused");

        await page.GetByRole(AriaRole.Button, new() { Name = "Enable key" }).ClickAsync();
        await Expect(page.Locator("h1 .badge")).ToHaveTextAsync("Active");
        await AdminTestHelpers.EventuallyAsync(async () =>
            (await PostAsync(client, ChatPath, OpenAIChat("enabled again", stream: false))).Status == HttpStatusCode.OK,
            TimeSpan.FromSeconds(10), "the enabled key to be accepted again");
    }

    [Fact]
    public async Task Price_overrides_are_added_edited_and_removed_and_reach_the_gateways()
    {
        var page = await fixture.NewPageAsync(width: 390, height: 844);
        await ConsoleFixture.SignInAsync(page, "/console/prices");
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Redis.ConnectionString);

        await page.GetByRole(AriaRole.Link, new() { Name = "Add override" }).ClickAsync();
        await page.GetByLabel("Model", new() { Exact = true }).FillAsync("Console-Test-Model");
        await page.GetByLabel("Input", new() { Exact = true }).FillAsync("1.5");
        await page.GetByLabel("Cached input (cache read)").FillAsync("0.15");
        await page.GetByLabel("Cache write, 5 minutes").FillAsync("1.875");
        await page.GetByLabel("Cache write, 1 hour").FillAsync("3");
        await page.GetByLabel("Output").FillAsync("abc");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save price" }).ClickAsync();
        await Expect(page.Locator("#output-error")).ToBeVisibleAsync();

        await page.GetByLabel("Output").FillAsync("6.0000001");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save price" }).ClickAsync();
        await Expect(page.Locator("#output-error")).ToContainTextAsync("At most 6 decimal places"); // the API's check

        await page.GetByLabel("Output").FillAsync("6");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save price" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/console/prices\\?saved=console-test-model$"));
        var row = page.Locator("#price-overrides tr", new() { HasText = "console-test-model" });
        await Expect(row).ToContainTextAsync("$1.5");
        await Expect(row.Locator("td[data-label=Output]")).ToHaveTextAsync("$6");
        var published = await redis.GetDatabase().HashGetAsync(AdminTestHelpers.PricesHash, "console-test-model");
        Assert.Contains("\"output\":6", published.ToString(), StringComparison.Ordinal);

        await row.GetByRole(AriaRole.Link, new() { Name = "Edit the price of console-test-model" }).ClickAsync();
        await Expect(page.GetByLabel("Model", new() { Exact = true })).ToHaveValueAsync("console-test-model");
        await page.GetByLabel("Output").FillAsync("7.25");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save price" }).ClickAsync();
        await Expect(row.Locator("td[data-label=Output]")).ToHaveTextAsync("$7.25");

        // Removing needs the box ticked.
        await row.GetByRole(AriaRole.Link).ClickAsync();
        await page.GetByLabel("Yes, remove the override").CheckAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Remove override" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/console/prices\\?removed=console-test-model$"));
        await Expect(row).ToHaveCountAsync(0);
        Assert.False(await redis.GetDatabase().HashExistsAsync(AdminTestHelpers.PricesHash, "console-test-model"));
    }
}
