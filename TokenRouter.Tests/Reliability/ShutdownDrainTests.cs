using System.Net;
using StackExchange.Redis;
using TokenRouter.Tests.Infrastructure;
using static TokenRouter.Tests.Reliability.OutageKit;

namespace TokenRouter.Tests.Reliability;

/// <summary>
/// The gateway's host is stopped (what SIGTERM does) while streams are in flight: it finishes the streams it can within
/// <c>SHUTDOWN_TIMEOUT</c>, cuts the rest, and the usage of every request that reached the provider lands in Redis.
/// </summary>
public sealed class ShutdownDrainTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    // Distinct prompts: identical ones in flight together would share one upstream call (dedup).
    private static string StreamBody(int i) => $$"""{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi {{i}}"}]}""";
    private RedisServer _redis = null!;
    private FakeProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _provider = await FakeProvider.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _provider.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task Streams_in_flight_finish_during_shutdown_and_each_one_is_metered()
    {
        _provider.RespondSlowStream(TimeSpan.FromMilliseconds(200));
        var gateway = new GatewayFactory(GatewaySettings(_provider, _redis, "fail-open"));
        using var client = gateway.CreateGatewayClient();
        var streams = await StartStreamsAsync(client, 4);

        var stopping = gateway.DisposeAsync().AsTask(); // the host's StopAsync: what SIGTERM triggers

        var requestIds = new List<string>();
        foreach (var response in streams)
        {
            using (response)
            {
                var body = await response.Content.ReadAsStringAsync();
                Assert.Contains("data: [DONE]", body, StringComparison.Ordinal);
                requestIds.Add(Header(response, "x-request-id"));
            }
        }
        await stopping.WaitAsync(Patience);

        var usage = await UsageEntriesAsync();
        Assert.Equal(requestIds.Order(StringComparer.Ordinal), usage.Keys.Order(StringComparer.Ordinal));
        Assert.All(usage.Values, entry => Assert.Equal(("200", "0"), entry));
    }

    [Fact]
    public async Task Streams_longer_than_the_shutdown_timeout_are_cut_and_still_metered()
    {
        _provider.RespondSlowStream(TimeSpan.FromSeconds(30));
        var settings = GatewaySettings(_provider, _redis, "fail-open");
        settings["SHUTDOWN_TIMEOUT"] = "1s";
        var gateway = new GatewayFactory(settings);
        using var client = gateway.CreateGatewayClient();
        var streams = await StartStreamsAsync(client, 2);
        var requestIds = streams.Select(r => Header(r, "x-request-id")).ToList();

        await gateway.DisposeAsync().AsTask().WaitAsync(Patience); // bounded: does not wait for the 30 s events

        foreach (var response in streams) response.Dispose();
        var usage = await UsageEntriesAsync();
        Assert.Equal(requestIds.Order(StringComparer.Ordinal), usage.Keys.Order(StringComparer.Ordinal));
    }

    private async Task<List<HttpResponseMessage>> StartStreamsAsync(HttpClient client, int count)
    {
        var streams = new List<HttpResponseMessage>();
        for (var i = 0; i < count; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Json(StreamBody(i)) };
            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            streams.Add(response);
        }
        await _provider.WaitForCallsAsync(count, Patience);
        return streams;
    }

    /// <summary>Request id → (status, estimated) of each usage entry in the Redis stream (a flag left out is "0").</summary>
    private async Task<Dictionary<string, (string Status, string Estimated)>> UsageEntriesAsync()
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString);
        var entries = await redis.GetDatabase().StreamRangeAsync("tokenrouter:usage");
        var usage = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
        foreach (var e in entries)
            Assert.True(usage.TryAdd(e["request_id"].ToString(), (e["status"].ToString(), e["estimated"].IsNull ? "0" : e["estimated"].ToString())), "usage recorded twice");
        return usage;
    }
}
