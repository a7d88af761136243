using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using TokenRouter.Contracts;

namespace TokenRouter.Tests.Admin;

/// <summary><c>/admin/providers/{provider}/deployments</c> against real Postgres and Redis: CRUD, validation, and the
/// provider key kept out of every response, the Postgres row and the Redis entry.</summary>
public sealed class ProviderDeploymentsApiTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private readonly HttpClient _client = fixture.Client;

    private async Task<JsonElement> CreateAsync(string provider, object body)
    {
        using var response = await _client.PostAsJsonAsync($"/admin/providers/{provider}/deployments", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task A_deployment_is_created_listed_patched_rotated_and_deleted_with_its_key_shown_only_as_a_hint()
    {
        var name = "east-" + Guid.NewGuid().ToString("N")[..8];
        const string key = "sk-proj-first-key-0123456789abcd";
        var created = await CreateAsync("openai", new
        {
            api_key = key,
            name,
            base_url = "https://example.test/v1/",
            weight = 2.5,
            rpm_limit = 60,
            tpm_limit = 100_000,
            cache_group = "org-a",
        });
        var id = created.GetProperty("id").GetString()!;
        Assert.Equal("sk-...abcd", created.GetProperty("key_hint").GetString());
        Assert.Equal($"admin-openai-{name}", created.GetProperty("deployment_id").GetString());
        Assert.Equal("https://example.test/v1", created.GetProperty("base_url").GetString());
        Assert.Equal(2.5, created.GetProperty("weight").GetDouble());
        Assert.True(created.GetProperty("enabled").GetBoolean());

        var list = await _client.GetJsonAsync("/admin/providers/openai/deployments");
        Assert.Contains(list.EnumerateArray(), d => d.GetProperty("id").GetString() == id);
        Assert.DoesNotContain(list.EnumerateArray(), d => d.GetProperty("id").GetString() == id && d.GetRawText().Contains(key, StringComparison.Ordinal));
        var other = await _client.GetJsonAsync("/admin/providers/anthropic/deployments");
        Assert.DoesNotContain(other.EnumerateArray(), d => d.GetProperty("id").GetString() == id);

        string patchedText;
        using (var patch = await _client.PatchJsonAsync($"/admin/providers/openai/deployments/{id}",
            """{"enabled": false, "rpm_limit": null, "weight": 1}"""))
        {
            patchedText = await patch.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        }
        var patched = JsonDocument.Parse(patchedText).RootElement;
        Assert.False(patched.GetProperty("enabled").GetBoolean());
        Assert.Equal(JsonValueKind.Null, patched.GetProperty("rpm_limit").ValueKind);
        Assert.Equal(100_000, patched.GetProperty("tpm_limit").GetInt32());

        const string rotatedKey = "sk-proj-second-key-0123456789wxyz";
        string rotatedText;
        using (var rotate = await _client.PostAsJsonAsync($"/admin/providers/openai/deployments/{id}/rotate", new { api_key = rotatedKey }))
        {
            rotatedText = await rotate.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, rotate.StatusCode);
        }
        var rotated = JsonDocument.Parse(rotatedText).RootElement;
        Assert.Equal("sk-...wxyz", rotated.GetProperty("key_hint").GetString());
        Assert.True(rotated.GetProperty("version").GetInt64() > patched.GetProperty("version").GetInt64());
        Assert.NotEqual(JsonValueKind.Null, rotated.GetProperty("key_rotated_at").ValueKind);

        foreach (var text in new[] { created.GetRawText(), list.GetRawText(), patchedText, rotatedText })
        {
            Assert.DoesNotContain(key, text, StringComparison.Ordinal);
            Assert.DoesNotContain(rotatedKey, text, StringComparison.Ordinal);
        }

        using (var delete = await _client.DeleteAsync($"/admin/providers/openai/deployments/{id}"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var gone = await _client.GetAsync($"/admin/providers/openai/deployments/{id}"))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Max_concurrency_round_trips_through_the_api_postgres_and_the_redis_entry_gateways_read()
    {
        var name = "capped-" + Guid.NewGuid().ToString("N")[..8];
        var created = await CreateAsync("openai", new { api_key = "sk-capped-0123456789", name, max_concurrency = 4 });
        var id = created.GetProperty("id").GetString()!;
        Assert.Equal(4, created.GetProperty("max_concurrency").GetInt32());
        var redis = fixture.RedisClient.GetDatabase();
        var entry = ProviderDeploymentContract.Entry.FromJson(await redis.HashGetAsync(ProviderDeploymentContract.Hash, $"admin-openai-{name}"))!;
        Assert.Equal(4, entry.MaxConcurrency);

        using (var patch = await _client.PatchJsonAsync($"/admin/providers/openai/deployments/{id}", """{"max_concurrency": 2}"""))
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        var read = await _client.GetJsonAsync($"/admin/providers/openai/deployments/{id}");
        Assert.Equal(2, read.GetProperty("max_concurrency").GetInt32());
        await using (var connection = new NpgsqlConnection(fixture.DatabaseConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT max_concurrency FROM provider_deployments WHERE id = @id", connection);
            command.Parameters.AddWithValue("id", Guid.Parse(id));
            Assert.Equal(2, (int)(await command.ExecuteScalarAsync())!);
        }
        entry = ProviderDeploymentContract.Entry.FromJson(await redis.HashGetAsync(ProviderDeploymentContract.Hash, $"admin-openai-{name}"))!;
        Assert.Equal(2, entry.MaxConcurrency);

        using (var invalid = await _client.PatchJsonAsync($"/admin/providers/openai/deployments/{id}", """{"max_concurrency": 0}"""))
        {
            Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
            var errors = JsonDocument.Parse(await invalid.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
            Assert.True(errors.TryGetProperty("max_concurrency", out _));
        }
        using (var removed = await _client.PatchJsonAsync($"/admin/providers/openai/deployments/{id}", """{"max_concurrency": null}"""))
        {
            Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
            Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(await removed.Content.ReadAsStringAsync()).RootElement.GetProperty("max_concurrency").ValueKind);
        }
        entry = ProviderDeploymentContract.Entry.FromJson(await redis.HashGetAsync(ProviderDeploymentContract.Hash, $"admin-openai-{name}"))!;
        Assert.Null(entry.MaxConcurrency);
        using var delete = await _client.DeleteAsync($"/admin/providers/openai/deployments/{id}");
    }

    [Fact]
    public async Task The_key_is_neither_in_the_postgres_row_nor_in_the_redis_entry_in_plaintext()
    {
        var name = "vault-" + Guid.NewGuid().ToString("N")[..8];
        const string key = "sk-ant-api03-secret-material-987654321";
        var created = await CreateAsync("anthropic", new { api_key = key, name });
        var id = Guid.Parse(created.GetProperty("id").GetString()!);

        await using var connection = new NpgsqlConnection(fixture.DatabaseConnectionString);
        await connection.OpenAsync();
        // The whole row as text: no column holds the key.
        await using var command = new NpgsqlCommand("SELECT row_to_json(d)::text, d.protected_key FROM provider_deployments d WHERE d.id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        var row = reader.GetString(0);
        var protectedKey = reader.GetString(1);
        Assert.DoesNotContain(key, row, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-material", row, StringComparison.Ordinal);
        Assert.True(protectedKey.Length > key.Length);

        var published = await fixture.RedisClient.GetDatabase().HashGetAsync(ProviderDeploymentContract.Hash, $"admin-anthropic-{name}");
        Assert.False(published.IsNullOrEmpty);
        Assert.DoesNotContain(key, published.ToString(), StringComparison.Ordinal);
        var entry = ProviderDeploymentContract.Entry.FromJson(published.ToString())!;
        Assert.Equal(protectedKey, entry.ProtectedKey);
    }

    [Fact]
    public async Task Invalid_requests_are_refused_with_the_field_named()
    {
        using (var unknown = await _client.PostAsJsonAsync("/admin/providers/sim-openai/deployments", new { api_key = "sk-x-0123456789" }))
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        using var invalid = await _client.PostAsJsonAsync("/admin/providers/deepseek/deployments",
            new { base_url = "ftp://nope", weight = -1, rpm_limit = 0, name = "has space" });
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        var errors = JsonDocument.Parse(await invalid.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        foreach (var field in new[] { "api_key", "base_url", "weight", "rpm_limit", "name" })
            Assert.True(errors.TryGetProperty(field, out _), field);

        var name = "dup-" + Guid.NewGuid().ToString("N")[..8];
        await CreateAsync("deepseek", new { api_key = "sk-dup-0123456789", name });
        using var taken = await _client.PostAsJsonAsync("/admin/providers/deepseek/deployments", new { api_key = "sk-dup-9876543210", name });
        Assert.Equal(HttpStatusCode.Conflict, taken.StatusCode);
    }

    [Fact]
    public async Task The_admin_key_is_required()
    {
        using var anonymous = fixture.Factory.CreateClient();
        using var response = await anonymous.GetAsync("/admin/providers/openai/deployments");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }
}
