using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using StackExchange.Redis;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

public sealed class ApiKeysApiTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private readonly HttpClient _client = fixture.Client;

    [Fact]
    public async Task Created_key_is_shown_once_and_stored_as_hash()
    {
        using var response = await _client.PostAsJsonAsync("/admin/api-keys", new { name = "my-key", quota_usd = 100 });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var id = created.GetProperty("id").GetGuid();
        var key = created.GetProperty("key").GetString()!;
        Assert.StartsWith("sk-tr-", key);
        Assert.Equal("sk-tr-".Length + 43, key.Length); // base64url of 32 bytes, unpadded
        Assert.Equal(key[..12], created.GetProperty("key_prefix").GetString());
        Assert.Equal("my-key", created.GetProperty("name").GetString());
        Assert.Equal(100m, created.GetProperty("quota_usd").GetDecimal());
        Assert.Equal($"/admin/api-keys/{id}", response.Headers.Location?.OriginalString);

        // Postgres holds the SHA-256 and nothing from which the key could be read back.
        await using var connection = new NpgsqlConnection(fixture.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT * FROM api_keys WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", id);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), "the key row is missing");
        Assert.Equal(Sha256Hex(key), reader.GetString(reader.GetOrdinal("key_hash")));
        for (var column = 0; column < reader.FieldCount; column++)
        {
            var value = Convert.ToString(reader.GetValue(column), CultureInfo.InvariantCulture) ?? "";
            Assert.False(value.Contains(key[12..], StringComparison.Ordinal), $"column {reader.GetName(column)} holds the key");
        }

        // Later reads never show it again.
        using var get = await _client.GetAsync($"/admin/api-keys/{id}");
        var single = await get.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.DoesNotContain(key, single);
        Assert.False(JsonDocument.Parse(single).RootElement.TryGetProperty("key", out _));
    }

    [Fact]
    public async Task Listing_keys_never_returns_secrets()
    {
        var first = await _client.CreateKeyAsync(new { name = "list-a", quota_usd = 5 });
        var second = await _client.CreateKeyAsync(new { name = "list-b", quota_usd = (decimal?)null });

        using var response = await _client.GetAsync("/admin/api-keys");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain(first.GetProperty("key").GetString()!, text);
        Assert.DoesNotContain(second.GetProperty("key").GetString()!, text);
        var listed = JsonDocument.Parse(text).RootElement.EnumerateArray().ToList();
        Assert.Contains(listed, k => k.GetProperty("id").GetGuid() == first.GetProperty("id").GetGuid());
        var b = Assert.Single(listed, k => k.GetProperty("id").GetGuid() == second.GetProperty("id").GetGuid());
        Assert.Equal("list-b", b.GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, b.GetProperty("quota_usd").ValueKind);
        Assert.True(b.GetProperty("enabled").GetBoolean());
        Assert.Equal(second.GetProperty("key_prefix").GetString(), b.GetProperty("key_prefix").GetString());
        Assert.All(listed, k => Assert.False(k.TryGetProperty("key", out _)));
        Assert.All(listed, k => Assert.False(k.TryGetProperty("key_hash", out _)));
    }

    [Fact]
    public async Task Created_key_is_published_to_redis_with_the_contract_fields()
    {
        var expiresAt = DateTimeOffset.UtcNow.AddDays(30);
        var created = await _client.CreateKeyAsync(new
        {
            name = "limited",
            quota_usd = 12.5m,
            rpm_limit = 60,
            tpm_limit = 100_000,
            expires_at = expiresAt,
        });

        var hash = await HashAsync(created.GetProperty("key").GetString()!);

        Assert.Equal(created.GetProperty("id").GetGuid().ToString("D"), hash["id"]);
        Assert.Equal("limited", hash["name"]);
        Assert.Equal("12.5", hash["quota_usd"]);
        Assert.Equal("1", hash["enabled"]);
        Assert.Equal(expiresAt.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture), hash["expires_at"]);
        Assert.Equal("60", hash["rpm_limit"]);
        Assert.Equal("100000", hash["tpm_limit"]);
        Assert.Equal(7, hash.Count);
    }

    [Fact]
    public async Task Key_without_limits_has_no_limit_fields_in_redis()
    {
        var created = await _client.CreateKeyAsync(new { name = "unlimited", quota_usd = (decimal?)null });

        var hash = await HashAsync(created.GetProperty("key").GetString()!);

        // Absent means "no limit" in the contract; an empty string would be a parse error on the gateway.
        Assert.Equal(["enabled", "id", "name"], hash.Keys.Order().ToArray());
    }

    [Fact]
    public async Task Revoked_key_is_removed_from_redis_and_listed_as_revoked()
    {
        var created = await _client.CreateKeyAsync(new { name = "to-revoke", quota_usd = 1 });
        var id = created.GetProperty("id").GetGuid();
        var key = created.GetProperty("key").GetString()!;
        Assert.True(await fixture.RedisClient.GetDatabase().KeyExistsAsync(RedisKeyFor(key)));

        var announced = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var subscriber = fixture.RedisClient.GetSubscriber();
        var channel = RedisChannel.Literal(KeysChangedChannel);
        await subscriber.SubscribeAsync(channel, (_, message) =>
        {
            if (message == Sha256Hex(key))
            {
                announced.TrySetResult(message!);
            }
        });
        try
        {
            using var response = await _client.DeleteAsync($"/admin/api-keys/{id}");

            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
            Assert.False(await fixture.RedisClient.GetDatabase().KeyExistsAsync(RedisKeyFor(key)));
            Assert.Equal(Sha256Hex(key), await announced.Task.WaitAsync(TimeSpan.FromSeconds(10)));

            var listed = (await _client.GetJsonAsync("/admin/api-keys")).EnumerateArray()
                .Single(k => k.GetProperty("id").GetGuid() == id);
            Assert.Equal(JsonValueKind.String, listed.GetProperty("revoked_at").ValueKind);
            Assert.False(listed.GetProperty("enabled").GetBoolean());

            // Revoking again is harmless and keeps the first revocation time.
            using var again = await _client.DeleteAsync($"/admin/api-keys/{id}");
            Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
            var reread = await _client.GetJsonAsync($"/admin/api-keys/{id}");
            Assert.Equal(listed.GetProperty("revoked_at").GetDateTimeOffset(), reread.GetProperty("revoked_at").GetDateTimeOffset());
        }
        finally
        {
            await subscriber.UnsubscribeAsync(channel);
        }
    }

    [Fact]
    public async Task Unknown_key_id_returns_404_for_get_and_revoke()
    {
        var unknown = Guid.NewGuid();

        using var get = await _client.GetAsync($"/admin/api-keys/{unknown}");
        using var delete = await _client.DeleteAsync($"/admin/api-keys/{unknown}");

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
    }

    [Theory]
    [InlineData("{\"name\":", null)]
    [InlineData("not json at all", null)]
    [InlineData("", null)]
    [InlineData("{\"name\": \"x\", \"quota_usd\": \"lots\"}", null)]
    [InlineData("{\"quota_usd\": 10}", "name")]
    [InlineData("{\"name\": \"   \", \"quota_usd\": 10}", "name")]
    [InlineData("{\"name\": \"neg\", \"quota_usd\": -1}", "quota_usd")]
    [InlineData("{\"name\": \"rpm\", \"quota_usd\": 1, \"rpm_limit\": 0}", "rpm_limit")]
    [InlineData("{\"name\": \"tpm\", \"quota_usd\": 1, \"tpm_limit\": -5}", "tpm_limit")]
    [InlineData("{\"name\": \"old\", \"quota_usd\": 1, \"expires_at\": \"2001-01-01T00:00:00Z\"}", "expires_at")]
    public async Task Invalid_create_request_is_rejected_with_400_and_a_problem_description(string body, string? invalidField)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await _client.PostAsync("/admin/api-keys", content);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal(400, problem.GetProperty("status").GetInt32());
        if (invalidField is null)
        {
            Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), text);
        }
        else
        {
            Assert.True(problem.GetProperty("errors").TryGetProperty(invalidField, out _), text);
        }
    }

    private async Task<Dictionary<string, string>> HashAsync(string clientKey)
    {
        var entries = await fixture.RedisClient.GetDatabase().HashGetAllAsync(RedisKeyFor(clientKey));
        Assert.NotEmpty(entries);
        return entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString());
    }
}
