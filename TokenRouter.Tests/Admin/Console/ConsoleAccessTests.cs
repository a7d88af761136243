using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using StackExchange.Redis;
using TokenRouter.Contracts;
using static Microsoft.Playwright.Assertions;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>
/// Who gets in: nothing but the login page (and its assets) without signing in, a cookie that is HttpOnly and SameSite,
/// sign-out, anti-forgery tokens on every form, and the REST API still on its Bearer admin key only.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleAccessTests(ConsoleFixture fixture)
{
    private static readonly string[] SignedInPages =
    [
        "/console", "/console/spend", "/console/spend?range=7", "/console/keys", "/console/keys/new",
        $"/console/keys/{Guid.Empty}", $"/console/keys/{Guid.Empty}/revoke", "/console/prices", "/console/prices/edit",
        "/console/prices/edit?model=gpt-4o",
    ];

    [Fact]
    public async Task Unauthenticated_visit_lands_on_login_and_the_admin_key_signs_in()
    {
        var page = await fixture.NewPageAsync();
        await page.GotoAsync("/console/spend?range=7");

        await Expect(page).ToHaveURLAsync(new Regex("/console/login\\?ReturnUrl=%2Fconsole%2Fspend%3Frange%3D7$"));
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in to the console" })).ToBeVisibleAsync();

        await page.GetByLabel("Admin key").FillAsync("not-the-admin-key");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("not the admin key");
        Assert.DoesNotContain(await page.Context.CookiesAsync(), c => c.Name == "tokenrouter-console");

        await page.GetByLabel("Admin key").FillAsync(AdminAppFactory.AdminKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();

        await Expect(page).ToHaveURLAsync(new Regex("/console/spend\\?range=7$"));
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Spend & savings", Exact = true })).ToBeVisibleAsync();
        var cookie = Assert.Single(await page.Context.CookiesAsync(), c => c.Name == "tokenrouter-console");
        Assert.True(cookie.HttpOnly);
        Assert.Equal(SameSiteAttribute.Lax, cookie.SameSite);
        Assert.Equal("/console", cookie.Path);
        Assert.False(cookie.Secure); // plain http here; Secure whenever the request is HTTPS (SameAsRequest)

        // A signed-in visit to the login page goes on to the console.
        await page.GotoAsync("/console/login");
        await Expect(page).ToHaveURLAsync(new Regex("/console/spend$"));
    }

    [Fact]
    public async Task Without_signing_in_only_the_login_page_and_its_assets_answer()
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false })
        { BaseAddress = new Uri(fixture.AdminUrl) };

        foreach (var path in SignedInPages)
        {
            using var response = await http.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"GET {path} answered {(int)response.StatusCode}");
            Assert.StartsWith("/console/login?ReturnUrl=", response.Headers.Location!.PathAndQuery);
        }

        foreach (var path in new[] { "/console/keys/new", "/console/logout", "/console/prices/edit?model=x", $"/console/keys/{Guid.Empty}/revoke" })
        {
            using var form = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["_handler"] = "create-key",
                ["Form.Name"] = "anonymous",
                ["signout"] = "1",
                ["Confirm"] = "revoke",
            });
            using var response = await http.PostAsync(path, form);
            Assert.True(response.StatusCode == HttpStatusCode.Redirect, $"POST {path} answered {(int)response.StatusCode}");
            Assert.StartsWith("/console/login", response.Headers.Location!.PathAndQuery);
        }
        Assert.Equal(0, await AdminTestHelpers.ScalarAsync(fixture.DatabaseConnectionString,
            "SELECT COUNT(*) FROM api_keys WHERE name = 'anonymous'"));

        using var login = await http.GetAsync("/console/login");
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        var html = await login.Content.ReadAsStringAsync();
        var assets = Regex.Matches(html, "(?:href|src)=\"([^\"]+\\.(?:css|js|svg))\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Contains(assets, a => a.EndsWith(".css", StringComparison.Ordinal));
        Assert.Contains(assets, a => a.Contains("blazor.web", StringComparison.Ordinal));
        foreach (var asset in assets)
        {
            using var response = await http.GetAsync("/" + asset.TrimStart('/'));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{asset} answered {(int)response.StatusCode}");
        }
        // No asset from anywhere but Admin itself.
        Assert.DoesNotMatch("(?:href|src)=\"(?:https?:)?//", html);

        using var root = await http.GetAsync("/");
        Assert.Equal("/console/spend", root.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task The_console_cookie_does_not_open_the_rest_api_which_keeps_its_bearer_key()
    {
        var page = await fixture.NewPageAsync();
        await ConsoleFixture.SignInAsync(page);
        var cookie = Assert.Single(await page.Context.CookiesAsync(), c => c.Name == "tokenrouter-console");

        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false })
        { BaseAddress = new Uri(fixture.AdminUrl) };
        using var withCookie = new HttpRequestMessage(HttpMethod.Get, "/admin/api-keys");
        withCookie.Headers.Add("Cookie", $"{cookie.Name}={cookie.Value}");
        using (var refused = await http.SendAsync(withCookie))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Contains("Bearer", refused.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        }

        // The cookie is scoped to /console: a browser does not even send it to the API.
        var apiResponse = await page.APIRequest.GetAsync("/admin/api-keys");
        Assert.Equal(401, apiResponse.Status);

        using var bearer = new HttpRequestMessage(HttpMethod.Get, "/admin/api-keys");
        bearer.Headers.Authorization = new("Bearer", AdminAppFactory.AdminKey);
        using (var accepted = await http.SendAsync(bearer))
        {
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        // And the cookie does open the console from a plain client too.
        using var page2 = new HttpRequestMessage(HttpMethod.Get, "/console/keys");
        page2.Headers.Add("Cookie", $"{cookie.Name}={cookie.Value}");
        using var console = await http.SendAsync(page2);
        Assert.Equal(HttpStatusCode.OK, console.StatusCode);
        Assert.True(console.Headers.CacheControl?.NoStore, "console pages must not be cached");
        Assert.Contains("frame-ancestors 'none'", console.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Changing_the_admin_key_signs_every_console_out()
    {
        var page = await fixture.NewPageAsync();
        await ConsoleFixture.SignInAsync(page);
        var cookie = Assert.Single(await page.Context.CookiesAsync(), c => c.Name == "tokenrouter-console");
        var database = await fixture.Postgres.CreateDatabaseAsync("console_rotated");
        // Replicas share the Data Protection key ring through Redis; the other Admin works in database 7 (so it leaves the
        // fixture's own state alone), so the ring is copied there.
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Redis.ConnectionString))
        {
            var ring = await redis.GetDatabase(0).ListRangeAsync(ProviderDeploymentContract.DataProtectionKeysKey);
            Assert.NotEmpty(ring);
            await redis.GetDatabase(7).KeyDeleteAsync(ProviderDeploymentContract.DataProtectionKeysKey);
            await redis.GetDatabase(7).ListRightPushAsync(ProviderDeploymentContract.DataProtectionKeysKey, ring);
        }

        // Another Admin sharing the Data Protection key ring (as replicas must): the cookie opens it while the admin key
        // is the same, and no longer once the key has changed.
        async Task<HttpStatusCode> VisitAsync(string adminKey)
        {
            var settings = AdminAppFactory.SettingsFor(database, fixture.Redis.ConnectionStringForDatabase(7));
            settings["ADMIN_API_KEY"] = adminKey;
            settings["Admin:Ledger:Enabled"] = "false";
            await using var other = new AdminAppFactory(settings);
            using var client = other.CreateClient(new() { AllowAutoRedirect = false, HandleCookies = false });
            using var request = new HttpRequestMessage(HttpMethod.Get, "/console/keys");
            request.Headers.Add("Cookie", $"{cookie.Name}={cookie.Value}");
            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await VisitAsync(AdminAppFactory.AdminKey));
        Assert.Equal(HttpStatusCode.Redirect, await VisitAsync("a-new-admin-key-after-rotation-0123456789"));
    }

    [Fact]
    public async Task Every_form_carries_an_antiforgery_token_and_a_post_without_one_is_refused()
    {
        var admin = fixture.Admin.CreateAdminClient();
        var key = await admin.CreateKeyAsync(new { name = "antiforgery-check" });
        var id = key.GetProperty("id").GetString();
        await admin.PutAsync("/admin/pricing/af-model", ChatJson("""{"input":1,"cached_input":0.1,"cache_write_5m":0,"cache_write_1h":0,"output":2}"""));

        var page = await fixture.NewPageAsync();
        var checkedForms = await PostFormsWithoutTokenAsync(page, "/console/login");
        await ConsoleFixture.SignInAsync(page);
        foreach (var path in new[] { "/console/spend", "/console/keys", "/console/keys/new", $"/console/keys/{id}",
                     $"/console/keys/{id}/revoke", "/console/prices", "/console/prices/edit", "/console/prices/edit?model=af-model" })
        {
            checkedForms += await PostFormsWithoutTokenAsync(page, path);
        }
        // Login; sign-out on each of the 8 pages; create; edit + enable/disable; revoke; new price; save + remove price.
        Assert.Equal(1 + 8 + 1 + 2 + 1 + 1 + 2, checkedForms);

        // A state-changing post without the token is refused and changes nothing.
        var forged = await page.APIRequest.PostAsync($"/console/keys/{id}/revoke", new()
        {
            Form = FormWith(page, ("_handler", "revoke-key"), ("Confirm", "revoke")),
            MaxRedirects = 0,
        });
        Assert.Equal(400, forged.Status);
        var forgedCreate = await page.APIRequest.PostAsync("/console/keys/new", new()
        {
            Form = FormWith(page, ("_handler", "create-key"), ("Form.Name", "forged")),
            MaxRedirects = 0,
        });
        Assert.Equal(400, forgedCreate.Status);
        var forgedSignOut = await page.APIRequest.PostAsync("/console/logout", new() { Form = FormWith(page, ("signout", "1")), MaxRedirects = 0 });
        Assert.Equal(400, forgedSignOut.Status);
        Assert.Equal(0, await AdminTestHelpers.ScalarAsync(fixture.DatabaseConnectionString,
            $"SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NOT NULL AND id = '{id}' OR name = 'forged'"));
    }

    [Fact]
    public async Task Sign_out_ends_the_session()
    {
        var page = await fixture.NewPageAsync();
        await ConsoleFixture.SignInAsync(page, "/console/prices");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Prices", Exact = true })).ToBeVisibleAsync();

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();

        await Expect(page).ToHaveURLAsync(new Regex("/console/login\\?signedout=1$"));
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync("signed out");
        Assert.DoesNotContain(await page.Context.CookiesAsync(), c => c.Name == "tokenrouter-console");
        await page.GotoAsync("/console/keys");
        await Expect(page).ToHaveURLAsync(new Regex("/console/login\\?ReturnUrl=%2Fconsole%2Fkeys$"));
    }

    [Fact]
    public async Task The_console_works_from_the_keyboard()
    {
        var page = await fixture.NewPageAsync();
        await page.GotoAsync("/console/login");
        // The key field has the focus: type and press Enter.
        await page.Keyboard.TypeAsync(AdminAppFactory.AdminKey);
        await page.Keyboard.PressAsync("Enter");
        await Expect(page).ToHaveURLAsync(new Regex("/console/spend$"));

        await page.Keyboard.PressAsync("Tab");
        await Expect(page.Locator(":focus")).ToHaveTextAsync("Skip to content");
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.Locator(":focus")).ToHaveAttributeAsync("aria-label", "TokenRouter console home");
        await page.Keyboard.PressAsync("Tab");
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.Locator(":focus")).ToHaveTextAsync("Keys");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page).ToHaveURLAsync(new Regex("/console/keys$"));
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Keys" })).ToHaveAttributeAsync("aria-current", "page");
    }

    /// <summary>Checks every POST form of the page has a non-empty token; returns how many forms it checked.</summary>
    private static async Task<int> PostFormsWithoutTokenAsync(IPage page, string path)
    {
        await page.GotoAsync(path);
        var forms = await page.EvaluateAsync<FormInfo[]>("""
            () => [...document.querySelectorAll('form')].map(f => ({
                method: (f.getAttribute('method') || 'get').toLowerCase(),
                token: f.querySelector('input[name="__RequestVerificationToken"]')?.value || '',
                label: f.getAttribute('action') || f.querySelector('input[name="_handler"]')?.value || '(no action)'
            }))
            """);
        foreach (var form in forms.Where(f => f.Method == "post"))
        {
            Assert.True(form.Token.Length > 20, $"The form {form.Label} on {path} has no anti-forgery token.");
        }
        // The only GET form is the spend page's range filter (reading only, so no token in its URL).
        Assert.All(forms.Where(f => f.Method != "post"), f => Assert.Equal("/console/spend", f.Label));
        return forms.Count(f => f.Method == "post");
    }

    private sealed class FormInfo
    {
        public string Method { get; set; } = "";
        public string Token { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private static IFormData FormWith(IPage page, params (string Name, string Value)[] fields)
    {
        var form = page.APIRequest.CreateFormData();
        foreach (var (name, value) in fields) form.Set(name, value);
        return form;
    }

    private static StringContent ChatJson(string body) => TokenRouter.Tests.Apis.ChatCompletionsApiTests.Json(body);
}
