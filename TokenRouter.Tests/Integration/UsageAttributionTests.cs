using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Dedup;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>
/// Tags and end users from the client's request reach the ledger on every surface (gateway → real Redis stream → Admin →
/// real Postgres) and the usage report splits spend by them.
/// </summary>
public sealed class UsageAttributionTests() : AdminWithGateway("usage_attribution")
{

    private static HttpRequestMessage Post(string path, string body, string? tags)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = ChatCompletionsApiTests.Json(body) };
        if (tags is not null) request.Headers.Add("x-tokenrouter-tags", tags);
        return request;
    }

    private static JsonElement Row(JsonElement report, string? group) =>
        Assert.Single(report.GetProperty("rows").EnumerateArray(), r => r.GetProperty("group").GetString() == group);

    [Fact]
    public async Task Tags_and_end_users_of_chat_messages_passthrough_sdk_and_dedup_followers_reach_the_usage_report()
    {
        using var admin = AdminApp.CreateAdminClient();
        var created = await admin.CreateKeyAsync(new { name = "tagger" });
        var key = created.GetProperty("key").GetString()!;
        using var client = Gateway.CreateGatewayClient(key);

        // Chat with header tags (one repeated, one blank) and an OpenAI end user.
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        using (var chat = await client.SendAsync(Post("v1/chat/completions",
            """{"model":"gpt-4o","max_tokens":10,"user":"alice","messages":[{"role":"user","content":"one"}]}""", "project-a, batch,,project-a")))
            Assert.Equal(HttpStatusCode.OK, chat.StatusCode);

        // Anthropic messages with metadata.user_id.
        Provider.RespondAnthropicText("hi", new AnthropicUsage(1000, 10));
        using (var messages = await client.SendAsync(Post("v1/messages",
            """{"model":"claude-sonnet-4-5","max_tokens":10,"metadata":{"user_id":"bob"},"messages":[{"role":"user","content":"two"}]}""", "project-a")))
            Assert.Equal(HttpStatusCode.OK, messages.StatusCode);

        // A passthrough endpoint: the header counts.
        Provider.Respond(FakeResponses.Error(200,
            """{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":50,"total_tokens":50}}"""));
        using (var embeddings = await client.SendAsync(Post("v1/embeddings", """{"model":"text-embedding-3-small","input":"three"}""", "embeds")))
            Assert.Equal(HttpStatusCode.OK, embeddings.StatusCode);

        // The unchanged OpenAI SDK: EndUserId is `user`, Metadata["tags"] a comma-separated string.
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        var sdk = new ChatClient("gpt-4o", new ApiKeyCredential(key),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
        var options = new ChatCompletionOptions { EndUserId = "carol" };
        options.Metadata["tags"] = "project-b,sdk";
        await sdk.CompleteChatAsync([new UserChatMessage("four")], options);

        // Two identical requests at once with different tags: the follower's spend (its dedup saving) is booked to its own tags.
        const string same = """{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"the same question"}]}""";
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        string hash;
        using (var learn = await client.SendAsync(Post("v1/chat/completions", same, null)))
            hash = learn.Headers.GetValues("x-tokenrouter-full-hash").Single();
        await DedupTestKit.WaitForFlightEndAsync(Redis, hash);
        Provider.Reset();
        Provider.RespondOpenAIText("hi", new OpenAIUsage(1000, 10));
        Provider.CloseGate();
        var leader = client.SendAsync(Post("v1/chat/completions", same, "leader"));
        await Provider.WaitForWaitingAtGateAsync(1, TimeSpan.FromSeconds(10));
        var follower = client.SendAsync(Post("v1/chat/completions", same, "follower"));
        await DedupTestKit.WaitForListenersAsync(hash, 2, Gateway);
        Provider.OpenGate();
        using (var first = await leader)
        using (var second = await follower)
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal("true", second.Headers.GetValues("x-tokenrouter-deduplicated").Single());
        }

        await Eventually.TrueAsync(async () =>
            (await admin.GetJsonAsync("/admin/usage?group_by=key")).GetProperty("totals").GetProperty("requests").GetInt32() == 7,
            "Admin to store all seven requests", TimeSpan.FromSeconds(20));

        var byTag = await admin.GetJsonAsync("/admin/usage?group_by=tag");
        Assert.Equal(2, Row(byTag, "project-a").GetProperty("requests").GetInt32());
        Assert.Equal(1, Row(byTag, "batch").GetProperty("requests").GetInt32());
        Assert.Equal(1, Row(byTag, "embeds").GetProperty("requests").GetInt32());
        Assert.Equal(1, Row(byTag, "project-b").GetProperty("requests").GetInt32());
        Assert.Equal(1, Row(byTag, "sdk").GetProperty("requests").GetInt32());
        Assert.Equal(1, Row(byTag, "leader").GetProperty("requests").GetInt32());
        var followerRow = Row(byTag, "follower");
        Assert.Equal(1, followerRow.GetProperty("deduplicated_requests").GetInt32());
        Assert.Equal(0m, followerRow.GetProperty("cost_usd").GetDecimal());
        Assert.Equal(0.0026m, followerRow.GetProperty("dedup_savings_usd").GetDecimal());
        Assert.Equal(1, Row(byTag, null).GetProperty("requests").GetInt32()); // the untagged learning call
        // Multi-tag requests appear under each tag, but the totals count every request once.
        Assert.Equal(7, byTag.GetProperty("totals").GetProperty("requests").GetInt32());

        var byUser = await admin.GetJsonAsync("/admin/usage?group_by=user");
        Assert.Equal(0.0026m, Row(byUser, "alice").GetProperty("cost_usd").GetDecimal());
        Assert.Equal(0.00315m, Row(byUser, "bob").GetProperty("cost_usd").GetDecimal());
        Assert.Equal(1, Row(byUser, "carol").GetProperty("requests").GetInt32());

        var projectA = await admin.GetJsonAsync("/admin/usage?group_by=model&tag=project-a");
        Assert.Equal(2, projectA.GetProperty("totals").GetProperty("requests").GetInt32());
        Assert.Equal(0.0026m + 0.00315m, projectA.GetProperty("totals").GetProperty("cost_usd").GetDecimal());
    }

    [Fact]
    public async Task Bad_tags_get_400_in_the_clients_shape_before_any_provider_call()
    {
        using var admin = AdminApp.CreateAdminClient();
        var created = await admin.CreateKeyAsync(new { name = "bad-tags" });
        using var client = Gateway.CreateGatewayClient(created.GetProperty("key").GetString()!);
        var tooMany = string.Join(',', Enumerable.Range(0, 17).Select(i => "t" + i));

        using (var openai = await client.SendAsync(Post("v1/chat/completions",
            """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", tooMany)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, openai.StatusCode);
            var error = JsonDocument.Parse(await openai.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Contains("at most 16 tags", error.GetProperty("message").GetString());
        }
        using (var anthropic = await client.SendAsync(Post("v1/messages",
            """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}""", new string('x', 65))))
        {
            Assert.Equal(HttpStatusCode.BadRequest, anthropic.StatusCode);
            var body = JsonDocument.Parse(await anthropic.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("error", body.GetProperty("type").GetString());
            Assert.Equal("invalid_request_error", body.GetProperty("error").GetProperty("type").GetString());
        }
        using (var wrongType = await client.SendAsync(Post("v1/chat/completions",
            """{"model":"gpt-4o","metadata":{"tags":42},"messages":[{"role":"user","content":"hi"}]}""", null)))
            Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);

        Assert.Equal(0, Provider.CallCount);
    }
}
