using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

/// <summary><c>/admin/webhooks</c> against real Postgres: CRUD, validation, and a secret that is shown once and stored encrypted.</summary>
public sealed class WebhooksApiTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private readonly HttpClient _client = fixture.Client;

    private async Task<JsonElement> CreateAsync(object body)
    {
        using var response = await _client.PostAsJsonAsync("/admin/webhooks", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task A_webhook_is_created_listed_read_updated_and_deleted_and_its_secret_is_shown_only_once()
    {
        var created = await CreateAsync(new { url = "https://alerts.example.com/tokenrouter", events = new[] { "budget.threshold" } });
        var id = created.GetProperty("id").GetString()!;
        var secret = created.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(["budget.threshold"], created.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
        Assert.True(created.GetProperty("enabled").GetBoolean());

        var single = await _client.GetJsonAsync($"/admin/webhooks/{id}");
        Assert.False(single.TryGetProperty("secret", out _));
        Assert.Equal("https://alerts.example.com/tokenrouter", single.GetProperty("url").GetString());
        using (var list = await _client.GetAsync("/admin/webhooks"))
        {
            var text = await list.Content.ReadAsStringAsync();
            Assert.Contains(id, text, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
            Assert.DoesNotContain("secret", text, StringComparison.Ordinal);
        }
        // At rest it is Data Protection ciphertext, not the secret.
        Assert.Equal(0, await ScalarAsync(fixture.DatabaseConnectionString,
            $"SELECT count(*) FROM webhooks WHERE secret_ciphertext LIKE '%{secret}%'"));

        using (var patch = await _client.PatchJsonAsync($"/admin/webhooks/{id}", """{"enabled": false, "events": null, "url": "http://10.0.0.5:9000/hook"}"""))
        {
            var text = await patch.Content.ReadAsStringAsync();
            Assert.True(patch.StatusCode == HttpStatusCode.OK, text);
            var updated = JsonDocument.Parse(text).RootElement;
            Assert.False(updated.GetProperty("enabled").GetBoolean());
            Assert.Equal(JsonValueKind.Null, updated.GetProperty("events").ValueKind);
            Assert.Equal("http://10.0.0.5:9000/hook", updated.GetProperty("url").GetString());
            Assert.False(updated.TryGetProperty("secret", out _));
        }

        Assert.Empty((await _client.GetJsonAsync($"/admin/webhooks/{id}/deliveries")).EnumerateArray());
        using (var delete = await _client.DeleteAsync($"/admin/webhooks/{id}"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var gone = await _client.GetAsync($"/admin/webhooks/{id}"))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        using (var goneDeliveries = await _client.GetAsync($"/admin/webhooks/{id}/deliveries"))
            Assert.Equal(HttpStatusCode.NotFound, goneDeliveries.StatusCode);
    }

    [Fact]
    public async Task A_supplied_secret_is_kept_and_returned_once()
    {
        var created = await CreateAsync(new { url = "http://127.0.0.1:9/hook", secret = "my-own-secret-0123456789" });

        Assert.Equal("my-own-secret-0123456789", created.GetProperty("secret").GetString());
        Assert.Equal(JsonValueKind.Null, created.GetProperty("events").ValueKind);
    }

    [Theory]
    [InlineData("""{"url": "ftp://example.com/hook"}""", "url")]
    [InlineData("""{"url": "/relative/hook"}""", "url")]
    [InlineData("""{"url": "https://user:pw@example.com/hook"}""", "url")]
    [InlineData("""{}""", "url")]
    [InlineData("""{"url": "https://example.com/hook", "events": ["budget.everything"]}""", "events")]
    [InlineData("""{"url": "https://example.com/hook", "events": []}""", "events")]
    [InlineData("""{"url": "https://example.com/hook", "secret": "short"}""", "secret")]
    public async Task Invalid_webhooks_are_refused_with_a_field_error(string json, string field)
    {
        using var response = await _client.PostAsync("/admin/webhooks", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("errors").TryGetProperty(field, out _), text);
    }

    [Fact]
    public async Task A_patch_with_an_unknown_field_or_a_bad_url_is_refused()
    {
        var id = (await CreateAsync(new { url = "https://example.com/hook" })).GetProperty("id").GetString();

        using (var unknown = await _client.PatchJsonAsync($"/admin/webhooks/{id}", """{"secret": "new-secret-0123456789"}"""))
            Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        using (var bad = await _client.PatchJsonAsync($"/admin/webhooks/{id}", """{"url": "mailto:ops@example.com"}"""))
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        using var missing = await _client.PatchJsonAsync($"/admin/webhooks/{Guid.NewGuid()}", """{"enabled": true}""");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task The_webhooks_api_needs_the_admin_key()
    {
        using var anonymous = fixture.Factory.CreateClient();
        using var response = await anonymous.GetAsync("/admin/webhooks");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }
}
