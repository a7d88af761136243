using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Options;

namespace TokenRouter.Tests.Admin;

public sealed class AdminAuthTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    public static TheoryData<string, string?, string?> BadCredentials => new()
    {
        { "no credentials", null, null },
        { "wrong bearer", "Bearer not-the-admin-key", null },
        { "wrong x-api-key", null, "not-the-admin-key" },
        { "admin key with another scheme", $"Basic {AdminAppFactory.AdminKey}", null },
        { "admin key prefix only", $"Bearer {AdminAppFactory.AdminKey[..10]}", null },
        { "empty bearer", "Bearer ", null },
    };

    [Theory]
    [MemberData(nameof(BadCredentials))]
    public async Task Admin_endpoints_answer_401_without_a_valid_admin_key(string _, string? authorization, string? apiKey)
    {
        using var client = fixture.Factory.CreateClient();
        foreach (var (method, path) in new[] { (HttpMethod.Get, "/admin/api-keys"), (HttpMethod.Post, "/admin/api-keys"),
                     (HttpMethod.Get, $"/admin/api-keys/{Guid.NewGuid()}"), (HttpMethod.Delete, $"/admin/api-keys/{Guid.NewGuid()}") })
        {
            using var request = new HttpRequestMessage(method, path);
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }
            if (apiKey is not null)
            {
                request.Headers.Add("x-api-key", apiKey);
            }
            if (method == HttpMethod.Post)
            {
                request.Content = new StringContent("{\"name\":\"x\",\"quota_usd\":1}", Encoding.UTF8, "application/json");
            }

            using var response = await client.SendAsync(request);

            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
        }
    }

    [Theory]
    [InlineData("bearer")]
    [InlineData("x-api-key")]
    public async Task Admin_key_is_accepted_as_bearer_token_or_x_api_key(string style)
    {
        using var client = fixture.Factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/api-keys");
        if (style == "bearer")
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminAppFactory.AdminKey);
        }
        else
        {
            request.Headers.Add("x-api-key", AdminAppFactory.AdminKey);
        }

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Anonymous_request_with_malformed_body_gets_401_not_400()
    {
        using var client = fixture.Factory.CreateClient();
        using var content = new StringContent("{\"name\":", Encoding.UTF8, "application/json");

        using var response = await client.PostAsync("/admin/api-keys", content);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task OpenApi_document_and_reference_page_are_served_without_the_admin_key()
    {
        using var client = fixture.Factory.CreateClient();

        using var document = await client.GetAsync("/openapi/v1.json");
        using var page = await client.GetAsync("/scalar/v1");

        Assert.Equal(HttpStatusCode.OK, document.StatusCode);
        var json = await document.Content.ReadAsStringAsync();
        Assert.Contains("/admin/api-keys", json);
        Assert.Contains("quota_usd", json); // the document speaks the snake_case wire format
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Startup_fails_with_a_clear_message_when_ADMIN_API_KEY_is_missing()
    {
        var settings = AdminAppFactory.SettingsFor(fixture.DatabaseConnectionString, fixture.Redis.ConnectionString);
        settings.Remove("ADMIN_API_KEY");
        await using var factory = new AdminAppFactory(settings);

        var error = Assert.Throws<OptionsValidationException>(() => factory.CreateClient());

        Assert.Contains("ADMIN_API_KEY is not set", error.Message);
    }
}
