using System.Net;
using System.Text.Json;
using StackExchange.Redis;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

public sealed class ApiKeysPatchTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private readonly HttpClient _client = fixture.Client;
    private IDatabase Redis => fixture.RedisClient.GetDatabase();

    [Fact]
    public async Task Patch_changes_only_the_fields_sent_and_republishes_the_key_with_a_notification()
    {
        var created = await _client.CreateKeyAsync(new { name = "before", quota_usd = 5, rpm_limit = 60, tpm_limit = 1000 });
        var key = created.GetProperty("key").GetString()!;
        var id = created.GetProperty("id").GetGuid();
        var announced = await ListenAsync(KeysChangedChannel, Sha256Hex(key));

        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"name":"after","rpm_limit":120}""");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("after", body.GetProperty("name").GetString());
        Assert.Equal(120, body.GetProperty("rpm_limit").GetInt32());
        Assert.Equal(5m, body.GetProperty("quota_usd").GetDecimal());
        Assert.Equal(1000, body.GetProperty("tpm_limit").GetInt32());
        Assert.False(body.TryGetProperty("key", out _)); // never the secret again
        Assert.DoesNotContain(key, body.GetRawText());

        var hash = await HashAsync(key);
        Assert.Equal("after", hash["name"]);
        Assert.Equal("120", hash["rpm_limit"]);
        Assert.Equal("1000", hash["tpm_limit"]);
        Assert.Equal("5", hash["quota_usd"]);
        Assert.Equal(Sha256Hex(key), await announced.WaitAsync(TimeSpan.FromSeconds(10)));

        var reread = await _client.GetJsonAsync($"/admin/api-keys/{id}");
        Assert.Equal("after", reread.GetProperty("name").GetString());
        Assert.Equal(120, reread.GetProperty("rpm_limit").GetInt32());
    }

    [Fact]
    public async Task Patch_with_explicit_nulls_removes_limits_and_expiry()
    {
        var created = await _client.CreateKeyAsync(new
        {
            name = "limited",
            quota_usd = 5,
            rpm_limit = 60,
            tpm_limit = 1000,
            expires_at = DateTimeOffset.UtcNow.AddDays(3),
        });
        var id = created.GetProperty("id").GetGuid();

        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{id}",
            """{"quota_usd":null,"rpm_limit":null,"tpm_limit":null,"expires_at":null}""");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        foreach (var field in new[] { "quota_usd", "rpm_limit", "tpm_limit", "expires_at" })
        {
            Assert.Equal(JsonValueKind.Null, body.GetProperty(field).ValueKind);
        }
        Assert.Equal("limited", body.GetProperty("name").GetString());
        var hash = await HashAsync(created.GetProperty("key").GetString()!);
        Assert.Equal(["enabled", "id", "name"], hash.Keys.Order().ToArray());
    }

    [Fact]
    public async Task Disabling_and_re_enabling_a_key_is_published_to_redis()
    {
        var created = await _client.CreateKeyAsync(new { name = "toggle" });
        var key = created.GetProperty("key").GetString()!;
        var id = created.GetProperty("id").GetGuid();

        using (var disable = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"enabled":false}"""))
        {
            Assert.Equal(HttpStatusCode.OK, disable.StatusCode);
        }
        Assert.Equal("0", (await HashAsync(key))["enabled"]);

        using (var enable = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"enabled":true}"""))
        {
            Assert.Equal(HttpStatusCode.OK, enable.StatusCode);
        }
        Assert.Equal("1", (await HashAsync(key))["enabled"]);
    }

    [Fact]
    public async Task Revoked_key_cannot_be_re_enabled_and_stays_out_of_redis()
    {
        var created = await _client.CreateKeyAsync(new { name = "revoked" });
        var key = created.GetProperty("key").GetString()!;
        var id = created.GetProperty("id").GetGuid();
        using (var revoke = await _client.DeleteAsync($"/admin/api-keys/{id}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        }

        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"enabled":true}""");

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.False(await Redis.KeyExistsAsync(RedisKeyFor(key)));
        var listed = await _client.GetJsonAsync($"/admin/api-keys/{id}");
        Assert.False(listed.GetProperty("enabled").GetBoolean());

        // Other changes to a revoked key are allowed and still do not bring it back.
        using var rename = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"name":"revoked-renamed"}""");
        Assert.Equal(HttpStatusCode.OK, rename.StatusCode);
        Assert.False(await Redis.KeyExistsAsync(RedisKeyFor(key)));
    }

    [Fact]
    public async Task Patch_of_an_unknown_key_returns_404()
    {
        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{Guid.NewGuid()}", """{"name":"x"}""");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData("""{"name":null}""", "name")]
    [InlineData("""{"name":"   "}""", "name")]
    [InlineData("""{"quota_usd":-1}""", "quota_usd")]
    [InlineData("""{"rpm_limit":0}""", "rpm_limit")]
    [InlineData("""{"tpm_limit":-3}""", "tpm_limit")]
    [InlineData("""{"expires_at":"2001-01-01T00:00:00Z"}""", "expires_at")]
    [InlineData("""{"enabled":null}""", "enabled")]
    [InlineData("""{"quota":5}""", "quota")]
    [InlineData("""{"quota_usd":"lots"}""", null)]
    [InlineData("""{"enabled":"maybe"}""", null)]
    [InlineData("""[1,2]""", null)]
    [InlineData("""{"name":""", null)]
    public async Task Invalid_patch_is_rejected_with_400_and_changes_nothing(string body, string? invalidField)
    {
        var created = await _client.CreateKeyAsync(new { name = "unchanged", quota_usd = 7, rpm_limit = 10 });
        var id = created.GetProperty("id").GetGuid();

        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{id}", body);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        if (invalidField is null)
        {
            Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()), text);
        }
        else
        {
            Assert.True(problem.GetProperty("errors").TryGetProperty(invalidField, out _), text);
        }
        var reread = await _client.GetJsonAsync($"/admin/api-keys/{id}");
        Assert.Equal("unchanged", reread.GetProperty("name").GetString());
        Assert.Equal(7m, reread.GetProperty("quota_usd").GetDecimal());
        Assert.Equal(10, reread.GetProperty("rpm_limit").GetInt32());
    }

    [Fact]
    public async Task Patch_without_a_json_body_is_rejected_with_415()
    {
        var created = await _client.CreateKeyAsync(new { name = "plain" });

        using var response = await _client.PatchAsync($"/admin/api-keys/{created.GetProperty("id").GetGuid()}",
            new StringContent("name=x", System.Text.Encoding.UTF8, "text/plain"));

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task Giving_a_key_a_quota_starts_its_redis_spend_from_the_ledger()
    {
        var created = await _client.CreateKeyAsync(new { name = "gets-quota" });
        var id = created.GetProperty("id").GetGuid();
        await InsertUsageAsync(fixture.DatabaseConnectionString, $"gq-{id}-1", id, 0.25m);
        await InsertUsageAsync(fixture.DatabaseConnectionString, $"gq-{id}-2", id, 0.5m);
        await InsertUsageAsync(fixture.DatabaseConnectionString, $"gq-{id}-3", id, null); // unpriced: no spend

        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"quota_usd":10}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("750000000", (await Redis.HashGetAsync(QuotaKey(id), "spent")).ToString());
        Assert.Equal("10", (await HashAsync(created.GetProperty("key").GetString()!))["quota_usd"]);
    }

    [Fact]
    public async Task Giving_a_key_a_quota_never_overwrites_spend_a_gateway_already_booked()
    {
        var created = await _client.CreateKeyAsync(new { name = "booked" });
        var id = created.GetProperty("id").GetGuid();
        await InsertUsageAsync(fixture.DatabaseConnectionString, $"bk-{id}", id, 0.25m);
        await Redis.HashSetAsync(QuotaKey(id), "spent", 123);

        using var response = await _client.PatchJsonAsync($"/admin/api-keys/{id}", """{"quota_usd":10}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("123", (await Redis.HashGetAsync(QuotaKey(id), "spent")).ToString());
    }

    private async Task<Dictionary<string, string>> HashAsync(string clientKey)
    {
        var entries = await Redis.HashGetAllAsync(RedisKeyFor(clientKey));
        Assert.NotEmpty(entries);
        return entries.ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);
    }

    /// <summary>Completes with the first message on <paramref name="channel"/> equal to <paramref name="expected"/>.</summary>
    private async Task<Task<string>> ListenAsync(string channel, string expected)
    {
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var subscriber = fixture.RedisClient.GetSubscriber();
        var redisChannel = RedisChannel.Literal(channel);
        await subscriber.SubscribeAsync(redisChannel, (_, message) =>
        {
            if (message == expected)
            {
                received.TrySetResult(message!);
            }
        });
        _ = received.Task.ContinueWith(_ => subscriber.UnsubscribeAsync(redisChannel), TaskScheduler.Default);
        return received.Task;
    }
}
