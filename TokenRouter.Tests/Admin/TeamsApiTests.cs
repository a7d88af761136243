using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

/// <summary><c>/admin/teams</c> against real Postgres and Redis: CRUD, validation, and the team copied into its keys' hashes.</summary>
public sealed class TeamsApiTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private readonly HttpClient _client = fixture.Client;

    private async Task<JsonElement> CreateTeamAsync(object body)
    {
        using var response = await _client.PostAsJsonAsync("/admin/teams", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task A_team_is_created_listed_read_updated_and_deleted()
    {
        var name = "research-" + Guid.NewGuid().ToString("N")[..8];
        var created = await CreateTeamAsync(new
        {
            name,
            budget_usd = 50,
            budget_duration = "1MO",
            rpm_limit = 60,
            tpm_limit = 100_000,
            models = new[] { "gpt-4o-mini", "claude-*" },
        });
        var id = created.GetProperty("id").GetString()!;
        Assert.Equal(50m, created.GetProperty("budget_usd").GetDecimal());
        Assert.Equal("1mo", created.GetProperty("budget_duration").GetString());
        Assert.Equal(["gpt-4o-mini", "claude-*"], created.GetProperty("models").EnumerateArray().Select(m => m.GetString()));

        var list = await _client.GetJsonAsync("/admin/teams");
        Assert.Contains(list.EnumerateArray(), t => t.GetProperty("id").GetString() == id);

        var single = await _client.GetJsonAsync($"/admin/teams/{id}");
        var budget = single.GetProperty("budget");
        Assert.Equal(0m, budget.GetProperty("spent_usd").GetDecimal());
        Assert.Equal(50m, budget.GetProperty("remaining_usd").GetDecimal());
        var now = DateTimeOffset.UtcNow;
        Assert.Equal(new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero), budget.GetProperty("period_start").GetDateTimeOffset());

        using (var patch = await _client.PatchJsonAsync($"/admin/teams/{id}", """{"budget_usd": null, "models": null, "rpm_limit": 5}"""))
        {
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
            var updated = JsonDocument.Parse(await patch.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(JsonValueKind.Null, updated.GetProperty("budget_usd").ValueKind);
            Assert.Equal(JsonValueKind.Null, updated.GetProperty("models").ValueKind);
            Assert.Equal(5, updated.GetProperty("rpm_limit").GetInt32());
            Assert.Equal(100_000, updated.GetProperty("tpm_limit").GetInt32());
        }

        using (var delete = await _client.DeleteAsync($"/admin/teams/{id}"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var gone = await _client.GetAsync($"/admin/teams/{id}"))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Invalid_teams_are_refused_with_field_errors_and_names_are_unique()
    {
        using (var response = await _client.PostAsJsonAsync("/admin/teams",
            new { name = "", budget_usd = -1, budget_duration = "2mo", rpm_limit = 0, models = new[] { "a,b" } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var errors = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
            foreach (var field in new[] { "name", "budget_usd", "budget_duration", "rpm_limit", "models" })
                Assert.True(errors.TryGetProperty(field, out _), field);
        }

        var name = "unique-" + Guid.NewGuid().ToString("N")[..8];
        await CreateTeamAsync(new { name });
        using var duplicate = await _client.PostAsJsonAsync("/admin/teams", new { name });
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);

        using var unknownTeam = await _client.PostAsJsonAsync("/admin/api-keys", new { name = "k", team_id = Guid.NewGuid() });
        Assert.Equal(HttpStatusCode.BadRequest, unknownTeam.StatusCode);
        Assert.Contains("team_id", await unknownTeam.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_keys_redis_hash_carries_its_team_and_follows_team_changes_and_deletion()
    {
        var team = await CreateTeamAsync(new
        {
            name = "hash-" + Guid.NewGuid().ToString("N")[..8],
            budget_usd = 50,
            budget_duration = "1mo",
            tpm_limit = 1000,
            models = new[] { "gpt-4o*" },
        });
        var teamId = team.GetProperty("id").GetString()!;
        var key = await _client.CreateKeyAsync(new { name = "member", team_id = teamId, budget_duration = "20s", models = new[] { "gpt-4o-mini" } });
        var redisKey = RedisKeyFor(key.GetProperty("key").GetString()!);
        var db = fixture.RedisClient.GetDatabase();

        async Task<Dictionary<string, string>> HashAsync() =>
            (await db.HashGetAllAsync(redisKey)).ToDictionary(e => e.Name.ToString(), e => e.Value.ToString());

        var hash = await HashAsync();
        Assert.Equal(teamId, hash["team_id"]);
        Assert.Equal("50", hash["team_budget_usd"]);
        Assert.Equal("1mo", hash["team_budget_duration"]);
        Assert.Equal("1000", hash["team_tpm_limit"]);
        Assert.Equal("gpt-4o*", hash["team_models"]);
        Assert.Equal("20s", hash["budget_duration"]);
        Assert.Equal("gpt-4o-mini", hash["models"]);

        using (var patch = await _client.PatchJsonAsync($"/admin/teams/{teamId}", """{"budget_usd": 75.5, "tpm_limit": null}"""))
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        hash = await HashAsync();
        Assert.Equal("75.5", hash["team_budget_usd"]);
        Assert.False(hash.ContainsKey("team_tpm_limit"));

        using (var delete = await _client.DeleteAsync($"/admin/teams/{teamId}"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        hash = await HashAsync();
        Assert.False(hash.ContainsKey("team_id"));
        Assert.False(hash.ContainsKey("team_budget_usd"));
        var reread = await _client.GetJsonAsync($"/admin/api-keys/{key.GetProperty("id").GetString()}");
        Assert.Equal(JsonValueKind.Null, reread.GetProperty("team_id").ValueKind);

        // Moving a key into a team and out again by PATCH.
        var other = await CreateTeamAsync(new { name = "other-" + Guid.NewGuid().ToString("N")[..8], budget_usd = 1 });
        using (var join = await _client.PatchJsonAsync($"/admin/api-keys/{key.GetProperty("id").GetString()}",
            $$"""{"team_id": "{{other.GetProperty("id").GetString()}}", "models": null}"""))
            Assert.Equal(HttpStatusCode.OK, join.StatusCode);
        hash = await HashAsync();
        Assert.Equal(other.GetProperty("id").GetString(), hash["team_id"]);
        Assert.False(hash.ContainsKey("models"));
        using (var leave = await _client.PatchJsonAsync($"/admin/api-keys/{key.GetProperty("id").GetString()}", """{"team_id": null}"""))
            Assert.Equal(HttpStatusCode.OK, leave.StatusCode);
        Assert.False((await HashAsync()).ContainsKey("team_id"));
    }
}
