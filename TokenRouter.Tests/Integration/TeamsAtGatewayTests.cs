using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Dedup;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>
/// Teams end to end, as a user meets them: created in Admin, enforced by the gateway through a real Redis (Admin's data in
/// a real Postgres). Spend lands on the key and its team on every surface; allow-lists refuse before the provider is
/// called; an exhausted team budget refuses every key of the team.
/// </summary>
public sealed class TeamsAtGatewayTests() : AdminWithGateway("teams_at_gateway")
{
    private const string Chat = """{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""";

    protected override void ConfigureGateway(Dictionary<string, string?> settings)
    {
        settings["Gateway:AuthCacheTtl"] = "00:00:01";
        settings["TOKENROUTER_MODEL_GROUPS"] = """{"fast": ["gpt-4o", "claude-haiku-4-5"]}""";
    }

    private static async Task<JsonElement> CreateTeamAsync(HttpClient admin, object body)
    {
        using var response = await admin.PostAsJsonAsync("/admin/teams", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>What the gateways have booked for the key and its team in their current periods (Admin's reports).</summary>
    private static async Task<(decimal Key, decimal Team)> GatewaySpendAsync(HttpClient admin, string keyId, string teamId)
    {
        var key = await admin.GetJsonAsync($"/admin/api-keys/{keyId}");
        var team = await admin.GetJsonAsync($"/admin/teams/{teamId}");
        return (Spent(key), Spent(team));

        static decimal Spent(JsonElement report) =>
            report.GetProperty("budget").GetProperty("gateway_spent_usd") is { ValueKind: JsonValueKind.Number } spent ? spent.GetDecimal() : 0m;
    }

    [Fact]
    public async Task Spend_lands_on_key_and_team_for_chat_messages_passthrough_and_dedup_followers()
    {
        using var admin = AdminApp.CreateAdminClient();
        var team = await CreateTeamAsync(admin, new { name = "research", budget_usd = 50, budget_duration = "1mo" });
        var teamId = team.GetProperty("id").GetString()!;
        var created = await admin.CreateKeyAsync(new { name = "alice", quota_usd = 10, budget_duration = "1mo", team_id = teamId });
        var keyId = created.GetProperty("id").GetString()!;
        using var client = Gateway.CreateGatewayClient(created.GetProperty("key").GetString()!);
        var spent = await GatewaySpendAsync(admin, keyId, teamId);
        Assert.Equal((0m, 0m), spent);

        async Task<decimal> LandsOnBothAsync(string surface)
        {
            var before = spent;
            // A request is settled as its exchange ends, which may be just after the client has its last byte. Key and team
            // are settled in one script, so once both grew they grew by their whole amounts.
            await Eventually.TrueAsync(async () =>
            {
                spent = await GatewaySpendAsync(admin, keyId, teamId);
                return spent.Key > before.Key && spent.Team > before.Team;
            }, $"{surface}: the spend of the key and of its team to grow", TimeSpan.FromSeconds(10));
            Assert.Equal(spent.Key - before.Key, spent.Team - before.Team);
            return spent.Key - before.Key;
        }

        // Chat completions: $2.50/M × 1000 + $10/M × 10.
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        using (var chat = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat)))
            Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        Assert.Equal(0.0026m, await LandsOnBothAsync("chat"));

        // Anthropic messages.
        Provider.RespondAnthropicText("hi", new AnthropicUsage(1000, 10));
        using (var messages = await client.PostAsync("v1/messages", ChatCompletionsApiTests.Json(
            """{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""")))
            Assert.Equal(HttpStatusCode.OK, messages.StatusCode);
        Assert.Equal(0.00315m, await LandsOnBothAsync("messages")); // $3/M × 1000 + $15/M × 10

        // A passthrough endpoint that names a model.
        Provider.Respond(FakeResponses.Error(200,
            """{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5000,"total_tokens":5000}}"""));
        using (var embeddings = await client.PostAsync("v1/embeddings", ChatCompletionsApiTests.Json(
            """{"model":"text-embedding-3-small","input":"The quick brown fox"}""")))
            Assert.Equal(HttpStatusCode.OK, embeddings.StatusCode);
        await LandsOnBothAsync("passthrough");

        // Two identical requests at once: one upstream call, paid once by the key and once by its team.
        const string same = """{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"the same question"}]}""";
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        string hash;
        using (var learn = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(same)))
            hash = learn.Headers.GetValues("x-tokenrouter-full-hash").Single();
        await DedupTestKit.WaitForFlightEndAsync(Redis, hash);
        await LandsOnBothAsync("chat (learning the request's hash)");
        Provider.Reset();
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        Provider.CloseGate();
        var leader = client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(same));
        await Provider.WaitForWaitingAtGateAsync(1, TimeSpan.FromSeconds(10));
        var follower = client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(same));
        await DedupTestKit.WaitForListenersAsync(hash, 2, Gateway);
        Provider.OpenGate();
        using (var first = await leader)
        using (var second = await follower)
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            Assert.Equal("true", second.Headers.GetValues("x-tokenrouter-deduplicated").Single());
        }
        Assert.Equal(1, Provider.CallCount);
        Assert.Equal(0.0026m, await LandsOnBothAsync("dedup follower"));

        // The ledger agrees with the gateways once Admin has drained the usage stream.
        await Eventually.TrueAsync(async () =>
        {
            var report = await admin.GetJsonAsync($"/admin/teams/{teamId}");
            return report.GetProperty("budget").GetProperty("spent_usd").GetDecimal() == spent.Team;
        }, "the ledger's team spend to match the gateway's", TimeSpan.FromSeconds(20));
        var teamReport = (await admin.GetJsonAsync($"/admin/teams/{teamId}")).GetProperty("budget");
        var firstOfMonth = new DateTimeOffset(DateTimeOffset.UtcNow.Year, DateTimeOffset.UtcNow.Month, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(firstOfMonth, teamReport.GetProperty("period_start").GetDateTimeOffset());
        Assert.Equal(firstOfMonth.AddMonths(1), teamReport.GetProperty("next_reset").GetDateTimeOffset());
        Assert.Equal(50m - spent.Team, teamReport.GetProperty("remaining_usd").GetDecimal());

        // The usage report splits the ledger by team.
        var byTeam = await admin.GetJsonAsync("/admin/usage?group_by=team");
        var research = Assert.Single(byTeam.GetProperty("rows").EnumerateArray(), r => r.GetProperty("group").GetString() == "research");
        Assert.Equal(spent.Team, research.GetProperty("cost_usd").GetDecimal());
        Assert.Equal(6, research.GetProperty("requests").GetInt32()); // chat, messages, embeddings, learning call, leader, follower
    }

    [Fact]
    public async Task A_model_group_is_served_by_the_first_member_the_key_may_use_and_refused_when_it_may_use_none()
    {
        using var admin = AdminApp.CreateAdminClient();
        var haikuOnly = await admin.CreateKeyAsync(new { name = "haiku-only", models = new[] { "claude-haiku-*" } });
        using var client = Gateway.CreateGatewayClient(haikuOnly.GetProperty("key").GetString()!);
        Provider.RespondAnthropicText("from haiku", new AnthropicUsage(10, 2));

        // gpt-4o, the group's first member, is not the key's to use: the group goes on to the member it may use.
        using (var served = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat.Replace("gpt-4o", "fast"))))
        {
            var text = await served.Content.ReadAsStringAsync();
            Assert.True(served.StatusCode == HttpStatusCode.OK, text);
            Assert.Equal("claude-haiku-4-5", JsonDocument.Parse(text).RootElement.GetProperty("model").GetString());
        }
        var call = Assert.Single(Provider.Requests);
        Assert.True(call.IsAnthropicMessages); // sent to Anthropic, never to OpenAI
        Assert.Equal("claude-haiku-4-5", call.Model);

        var models = await client.GetFromJsonAsync<JsonElement>("v1/models");
        Assert.Contains("fast", models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));

        // A key allowed none of the members: the usual 403, naming the first, and no provider call.
        var deepseekOnly = await admin.CreateKeyAsync(new { name = "deepseek-only", models = new[] { "deepseek-chat" } });
        using var other = Gateway.CreateGatewayClient(deepseekOnly.GetProperty("key").GetString()!);
        using (var refused = await other.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat.Replace("gpt-4o", "fast"))))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("model_not_allowed", error.GetProperty("code").GetString());
            Assert.Contains("'gpt-4o'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        Assert.Single(Provider.Requests);
        var otherModels = await other.GetFromJsonAsync<JsonElement>("v1/models");
        Assert.DoesNotContain("fast", otherModels.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
    }

    [Fact]
    public async Task Models_outside_the_key_or_team_allow_list_get_403_in_the_clients_shape_before_any_provider_call()
    {
        using var admin = AdminApp.CreateAdminClient();
        var team = await CreateTeamAsync(admin, new { name = "mini-team", models = new[] { "gpt-4o*", "claude-*" } });
        var created = await admin.CreateKeyAsync(new
        {
            name = "bob",
            team_id = team.GetProperty("id").GetString(),
            models = new[] { "gpt-4o-mini" },
        });
        using var client = Gateway.CreateGatewayClient(created.GetProperty("key").GetString()!);
        Provider.RespondOpenAIText("hi", new OpenAIUsage(10, 2));

        using (var refused = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("model_not_allowed", error.GetProperty("code").GetString());
            Assert.Equal("The model 'gpt-4o' is not allowed for this API key. Ask your administrator to add it to the allowed models.",
                error.GetProperty("message").GetString());
        }
        using (var refused = await client.PostAsync("v1/messages", ChatCompletionsApiTests.Json(
            """{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            var root = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("error", root.GetProperty("type").GetString());
            Assert.Equal("permission_error", root.GetProperty("error").GetProperty("type").GetString());
        }
        Assert.Equal(0, Provider.CallCount);

        using (var allowed = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat.Replace("gpt-4o", "gpt-4o-mini"))))
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);

        var models = await client.GetFromJsonAsync<JsonElement>("v1/models");
        Assert.Equal(["gpt-4o-mini"], models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));

        // A key of the team without a list of its own gets the team's: gpt-4o yes, deepseek no.
        var teamOnly = await admin.CreateKeyAsync(new { name = "carol", team_id = team.GetProperty("id").GetString() });
        using var carol = Gateway.CreateGatewayClient(teamOnly.GetProperty("key").GetString()!);
        using (var ok = await carol.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat)))
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using (var refused = await carol.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat.Replace("gpt-4o", "deepseek-chat"))))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("not allowed for the team 'mini-team'", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var carolModels = await carol.GetFromJsonAsync<JsonElement>("v1/models");
        Assert.All(carolModels.GetProperty("data").EnumerateArray(), m =>
            Assert.Matches("^(gpt-4o|claude-|fast$)", m.GetProperty("id").GetString()!)); // fast: this class's model group
    }

    [Fact]
    public async Task An_exhausted_team_budget_refuses_every_key_of_the_team_until_the_budget_is_raised()
    {
        using var admin = AdminApp.CreateAdminClient();
        var team = await CreateTeamAsync(admin, new { name = "small", budget_usd = 0.003m, budget_duration = "1mo" });
        var teamId = team.GetProperty("id").GetString()!;
        var alice = await admin.CreateKeyAsync(new { name = "alice", team_id = teamId });
        var bob = await admin.CreateKeyAsync(new { name = "bob", team_id = teamId });
        using var aliceClient = Gateway.CreateGatewayClient(alice.GetProperty("key").GetString()!);
        using var bobClient = Gateway.CreateGatewayClient(bob.GetProperty("key").GetString()!);
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10)); // $0.0026 each

        using (var first = await aliceClient.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat)))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using (var second = await bobClient.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat)))
            Assert.Equal(HttpStatusCode.OK, second.StatusCode); // $0.0026 spent + this one's worst case still fits
        await Eventually.TrueAsync(async () => (await GatewaySpendAsync(admin, alice.GetProperty("id").GetString()!, teamId)).Team == 0.0052m,
            "both requests to be settled", TimeSpan.FromSeconds(10));
        foreach (var client in new[] { aliceClient, bobClient })
        {
            using var refused = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat));
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("insufficient_quota", error.GetProperty("code").GetString());
            var message = error.GetProperty("message").GetString()!;
            Assert.StartsWith("You exceeded your team's quota: the budget of team 'small' is $0.003", message, StringComparison.Ordinal);
            Assert.Contains("The budget resets at ", message, StringComparison.Ordinal);
        }
        Assert.Equal(2, Provider.CallCount);

        using (var raise = await admin.PatchJsonAsync($"/admin/teams/{teamId}", """{"budget_usd": 1}"""))
            Assert.Equal(HttpStatusCode.OK, raise.StatusCode);
        await Eventually.TrueAsync(async () =>
        {
            using var response = await bobClient.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat));
            return response.StatusCode == HttpStatusCode.OK;
        }, "the raised team budget to reach the gateway", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_redis_flush_is_reseeded_with_the_current_periods_spend_from_the_ledger()
    {
        using var admin = AdminApp.CreateAdminClient();
        var team = await CreateTeamAsync(admin, new { name = "flushed", budget_usd = 5, budget_duration = "1d" });
        var teamId = team.GetProperty("id").GetString()!;
        var created = await admin.CreateKeyAsync(new { name = "dave", quota_usd = 1, budget_duration = "1w", team_id = teamId });
        var keyId = created.GetProperty("id").GetString()!;
        using var client = Gateway.CreateGatewayClient(created.GetProperty("key").GetString()!);
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        for (var i = 0; i < 3; i++)
        {
            // Three different requests: an identical one sent as the last is answered may still join its finished flight
            // on Redis and cost nothing (a clean-clone run saw the ledger hold 3 rows and the team 2 requests' spend).
            using var response = await client.PostAsync("v1/chat/completions", ChatCompletionsApiTests.Json(Chat.Replace("\"hi\"", $"\"hi {i}\"")));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        // Should this time out again, the message says where the records were.
        string? seen = null;
        await Eventually.TrueAsync(async () =>
        {
            var spent = (await admin.GetJsonAsync($"/admin/teams/{teamId}")).GetProperty("budget").GetProperty("spent_usd").GetDecimal();
            if (spent == 0.0078m) return true;
            seen = $"team spent {spent}, gateway usage backlog {Gateway.Service<RedisUsageSink>().Backlog}, /admin/ledger {(await admin.GetJsonAsync("/admin/ledger")).GetRawText()}";
            return false;
        }, () => $"the ledger to hold the three requests (last seen: {seen})");
        await Eventually.TrueAsync(async () => (await GatewaySpendAsync(admin, keyId, teamId)) == (0.0078m, 0.0078m),
            "the gateway to have settled the three requests", TimeSpan.FromSeconds(10));

        using (var redis = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",allowAdmin=true"))
            await redis.GetServer(redis.GetEndPoints()[0]).FlushAllDatabasesAsync();
        Assert.Equal((0m, 0m), await GatewaySpendAsync(admin, keyId, teamId));

        // A restarted Admin (or one that sees Redis come back) seeds the spend of the current periods from its ledger.
        await using var restarted = new AdminAppFactory(AdminAppFactory.SettingsFor(Database, Redis.ConnectionString));
        using var again = restarted.CreateAdminClient();
        Assert.Equal((0.0078m, 0.0078m), await GatewaySpendAsync(again, keyId, teamId));
        var redisKey = (await again.GetJsonAsync($"/admin/api-keys/{keyId}")).GetProperty("budget");
        Assert.Equal("1w", redisKey.GetProperty("budget_duration").GetString());
        Assert.Equal(DayOfWeek.Monday, redisKey.GetProperty("period_start").GetDateTimeOffset().DayOfWeek);
        Assert.Equal(7, (redisKey.GetProperty("next_reset").GetDateTimeOffset() - redisKey.GetProperty("period_start").GetDateTimeOffset()).Days);
    }
}
