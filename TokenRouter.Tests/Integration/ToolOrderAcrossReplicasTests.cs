using System.Text.Json;
using TokenRouter.Tests.Apis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Integration;

/// <summary>A conversation keeps one tool order whichever replica serves its turns (shared through Redis).</summary>
public sealed class ToolOrderAcrossReplicasTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;
    private GatewayFactory _a = null!;
    private GatewayFactory _b = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _provider = await FakeProvider.StartAsync();
        _a = new GatewayFactory(Settings());
        _b = new GatewayFactory(Settings());
    }

    private Dictionary<string, string?> Settings()
    {
        var settings = GatewayFactory.ProvidersAt(_provider);
        settings["ConnectionStrings:redis"] = _redis.ConnectionString;
        return settings;
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _provider.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task Tool_added_mid_conversation_on_another_replica_is_appended_not_sorted_in()
    {
        _provider.RespondOpenAIText("ok", new OpenAIUsage(10, 1));
        using var a = _a.CreateGatewayClient();
        using var b = _b.CreateGatewayClient();

        await ChatCompletionsApiTests.PostRawAsync(a, Request(["delta", "alpha", "charlie"], turns: 1));
        // Turn two on the other replica, with a tool whose name sorts into the middle.
        await ChatCompletionsApiTests.PostRawAsync(b, Request(["delta", "alpha", "charlie", "bravo"], turns: 2));
        // A different conversation seen for the first time gets plain name order.
        await ChatCompletionsApiTests.PostRawAsync(b, Request(["delta", "alpha", "charlie", "bravo"], turns: 1, first: "another conversation"));

        Assert.Equal(["alpha", "charlie", "delta"], ToolNames(0));
        Assert.Equal(["alpha", "charlie", "delta", "bravo"], ToolNames(1));
        Assert.Equal(["alpha", "bravo", "charlie", "delta"], ToolNames(2));
    }

    private List<string> ToolNames(int request) =>
        _provider.Requests[request].Json!.Value.GetProperty("tools").EnumerateArray()
            .Select(t => t.GetProperty("function").GetProperty("name").GetString()!).ToList();

    private static string Request(string[] tools, int turns, string first = "book a flight")
    {
        var messages = new List<object> { new { role = "system", content = "You are an airline agent." }, new { role = "user", content = first } };
        if (turns > 1)
        {
            messages.Add(new { role = "assistant", content = "Which date?" });
            messages.Add(new { role = "user", content = "Tomorrow" });
        }
        return JsonSerializer.Serialize(new
        {
            model = "gpt-4o",
            messages,
            tools = tools.Select(name => new { type = "function", function = new { name, parameters = new { type = "object" } } }),
        });
    }
}
