using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using TokenRouter.Gateway.Routing;
using TokenRouter.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>
/// The Providers page: a gateway on the console's Redis with two OpenAI deployments, one of whose keys the provider
/// refuses; the page lists both with their settings, and the refused one as cooling down, and why.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleProvidersTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task The_providers_page_lists_each_deployment_and_shows_the_one_whose_key_was_refused_cooling_down()
    {
        // A provider that refuses one of the two keys, as it does a revoked key.
        await using var provider = await FakeProvider.StartAsync();
        provider.Respond((request, context) => context.Request.Headers.Authorization.ToString() == "Bearer sk-upstream-west"
            ? FakeResponses.Error(401, """{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}""")(request, context)
            : FakeResponses.OpenAIText("Hello", new OpenAIUsage(Prompt: 20, Completion: 5))(request, context));
        await using var gateway = new GatewayFactory(new Dictionary<string, string?>
        {
            ["ConnectionStrings:redis"] = fixture.Redis.ConnectionString,
            ["Providers:SimulatorEnabled"] = "false",
            ["Providers:OpenAI:BaseUrl"] = provider.OpenAIBaseUrl.ToString(),
            ["Providers:OpenAI:Deployments:0:Name"] = "openai-east",
            ["Providers:OpenAI:Deployments:0:ApiKey"] = "sk-upstream-east",
            ["Providers:OpenAI:Deployments:0:Weight"] = "2",
            ["Providers:OpenAI:Deployments:0:CacheGroup"] = "org-acme",
            ["Providers:OpenAI:Deployments:0:Rpm"] = "600",
            ["Providers:OpenAI:Deployments:0:Tpm"] = "250000",
            ["Providers:OpenAI:Deployments:0:MaxConcurrency"] = "32",
            ["Providers:OpenAI:Deployments:1:Name"] = "openai-west",
            ["Providers:OpenAI:Deployments:1:ApiKey"] = "sk-upstream-west",
            ["Providers:OpenAI:Deployments:1:Weight"] = "1",
        });

        // Requests until one was sent to the west deployment first: refused (401), it cools down at once and the request
        // fails over to the east one, so every client still gets its answer.
        using var client = gateway.CreateGatewayClient();
        var health = gateway.Service<DeploymentHealth>();
        var sent = 0;
        await Eventually.TrueAsync(async () =>
        {
            // The system prompt is the conversation's prefix, which picks the deployment: a new one each time.
            var body = JsonSerializer.Serialize(new
            {
                model = "gpt-4o",
                messages = new object[] { new { role = "system", content = $"You are assistant {sent++}." }, new { role = "user", content = "Hi" } },
            });
            var reply = await PostAsync(client, "v1/chat/completions", body);
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            return !health.IsAvailable("openai-west");
        }, "a request routed to openai-west first, cooling it down");

        var page = await fixture.NewPageAsync();
        await ConsoleFixture.SignInAsync(page, "/console/spend");
        await page.GetByRole(AriaRole.Navigation, new() { Name = "Console" }).GetByRole(AriaRole.Link, new() { Name = "Providers" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Providers", Exact = true })).ToBeVisibleAsync();

        // The gateway publishes every 10 s: the cool-down shows once it has published after it.
        var west = page.Locator("#deployments tr[data-deployment='openai-west']");
        await Eventually.TrueAsync(async () =>
        {
            await page.ReloadAsync();
            return await west.CountAsync() == 1 && (await west.InnerTextAsync()).Contains("Cooling down", StringComparison.Ordinal);
        }, "openai-west shown as cooling down");

        await Expect(west).ToContainTextAsync("openai");
        await Expect(west).ToContainTextAsync("key refused (401/403)");
        await Expect(west).ToContainTextAsync("until ");
        await Expect(west.Locator(".badge")).ToHaveTextAsync("Cooling down");
        var east = page.Locator("#deployments tr[data-deployment='openai-east']");
        await Expect(east.Locator(".badge")).ToHaveTextAsync("Healthy");
        await Expect(east.Locator("td[data-label='Weight']")).ToHaveTextAsync("2");
        await Expect(east.Locator("td[data-label='Cache group']")).ToHaveTextAsync("org-acme");
        await Expect(east.Locator("td[data-label='RPM']")).ToHaveTextAsync("600");
        await Expect(east.Locator("td[data-label='TPM']")).ToHaveTextAsync("250,000");
        await Expect(east.Locator("td[data-label='Max concurrency']")).ToHaveTextAsync("32");
        await Expect(west.Locator("td[data-label='Max concurrency']")).ToHaveTextAsync("—");
        await Expect(east.Locator("td[data-label='Last seen']")).Not.ToBeEmptyAsync();
        await Expect(page.Locator("nav.mainnav a[aria-current='page']")).ToHaveTextAsync("Providers");

        // Ids and settings only: never a provider key or its address.
        var html = await page.ContentAsync();
        Assert.DoesNotContain("sk-upstream-", html, StringComparison.Ordinal);
        Assert.DoesNotContain(provider.BaseUrl.Authority, html, StringComparison.Ordinal);

        // The README's screenshot (TOKENROUTER_CONSOLE_SCREENSHOTS=docs/console, as ConsoleLayoutTests).
        await ConsoleFixture.ScreenshotAsync(page, ConsoleFixture.ScreenshotFolder(), "providers.png", fullPage: true);
    }
}
