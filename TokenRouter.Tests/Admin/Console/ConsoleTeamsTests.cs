using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using TokenRouter.Admin.Alerts;
using static Microsoft.Playwright.Assertions;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>The Teams page: each team with its keys, budget, the current period's spend from the ledger and the alerts sent.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleTeamsTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task The_teams_page_shows_each_team_s_period_spend_and_the_highest_alert_sent()
    {
        using var admin = fixture.Admin.CreateAdminClient();
        var name = "research-" + Guid.NewGuid().ToString("N")[..6];
        using var created = await admin.PostAsJsonAsync("/admin/teams", new { name, budget_usd = 50, budget_duration = "1mo" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var team = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetGuid();
        var alice = (await admin.CreateKeyAsync(new { name = name + "-alice", team_id = team })).GetProperty("id").GetGuid();
        var bob = (await admin.CreateKeyAsync(new { name = name + "-bob", team_id = team })).GetProperty("id").GetGuid();
        // $41.50 this month, and $30 last month that no longer counts.
        await InsertUsageAsync(fixture.DatabaseConnectionString, name + "-1", alice, 25m);
        await InsertUsageAsync(fixture.DatabaseConnectionString, name + "-2", bob, 16.5m);
        await InsertUsageAsync(fixture.DatabaseConnectionString, name + "-old", bob, 30m, createdAt: DateTimeOffset.UtcNow.AddMonths(-1).AddDays(-1));
        await using (var scope = fixture.Admin.Services.CreateAsyncScope())
        {
            // What the ledger consumer does after a batch: 50 and 80 % of the team's budget are now alerted.
            await scope.ServiceProvider.GetRequiredService<BudgetAlertDetector>().DetectAsync([alice, bob], CancellationToken.None);
        }

        var page = await fixture.NewPageAsync();
        await ConsoleFixture.SignInAsync(page, "/console/teams");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Teams", Exact = true })).ToBeVisibleAsync();
        var row = page.Locator($"tr[data-team-id='{team}']");
        await Expect(row).ToContainTextAsync(name);
        await Expect(row.Locator("td[data-label='Keys']")).ToHaveTextAsync("2");
        await Expect(row.Locator("td[data-label='Budget']")).ToHaveTextAsync("$50.00");
        await Expect(row.Locator("td[data-label='Period']")).ToHaveTextAsync("1mo");
        await Expect(row.Locator("td[data-label='Spent this period']")).ToContainTextAsync("$41.50");
        await Expect(row.Locator("[role=progressbar]")).ToHaveAttributeAsync("aria-valuenow", "83");
        await Expect(row.Locator("td[data-label='Alerted']")).ToHaveTextAsync("80 %");
        var now = DateTimeOffset.UtcNow;
        var reset = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1);
        await Expect(row.Locator("td[data-label='Next reset']")).ToHaveTextAsync(reset.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) + " 00:00 UTC");
    }
}
