using System.Globalization;
using StackExchange.Redis;
using TokenRouter.Gateway.Limits;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Limits;

/// <summary>Per-key RPM/TPM against a real Redis shared by two gateway replicas.</summary>
public sealed class RateLimitRedisTests : IAsyncLifetime
{
    private RedisServer _server = null!;
    private ConnectionMultiplexer _probe = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.GetSharedAsync();
        _probe = await ConnectionMultiplexer.ConnectAsync(_server.ConnectionString);
    }

    public async Task DisposeAsync() => await _probe.DisposeAsync();

    [Fact]
    public async Task Rpm_limit_is_exact_across_two_replicas_sharing_redis()
    {
        await using var replicaA = await LimitsHost.StartAsync(_server.ConnectionString, time: LimitsClock.MidMinute());
        await using var replicaB = await LimitsHost.StartAsync(_server.ConnectionString, time: LimitsClock.MidMinute());
        var key = Admit.Key(rpm: 5);

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            await start.Task;
            var replica = i % 2 == 0 ? replicaA : replicaB;
            var result = await Admit.TryAsync(() =>
                replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None));
            if (result.Admission is not null) await result.Admission.DisposeAsync();
            return result;
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(attempts);

        Assert.Equal(5, results.Count(r => r.Admission is not null));
        var refused = results.Where(r => r.Error is not null).Select(r => r.Error!).ToList();
        Assert.Equal(15, refused.Count);
        Assert.All(refused, e =>
        {
            Assert.Equal(429, e.Status);
            Assert.Equal("rate_limit_exceeded", e.Code);
            Assert.Equal(30, e.RetryAfterSeconds); // the clock stands 30 s into the minute
        });
        Assert.Equal("5", (await _probe.GetDatabase().HashGetAsync($"tokenrouter:rate:{{{key.KeyId}}}", "r")).ToString());
    }

    [Fact]
    public async Task Rpm_window_opens_again_in_the_next_minute()
    {
        var clock = LimitsClock.MidMinute();
        await using var replica = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var key = Admit.Key(rpm: 1);
        await (await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None)).DisposeAsync();
        var (_, refused) = await Admit.TryAsync(() => replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None));
        Assert.Equal("rate_limit_exceeded", refused!.Code);

        clock.Now += TimeSpan.FromSeconds(30);
        await (await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None)).DisposeAsync();
    }

    [Fact]
    public async Task A_replica_whose_clock_lags_joins_the_newer_window_instead_of_opening_an_older_one()
    {
        var ahead = LimitsClock.MidMinute();
        var behind = new LimitsClock(ahead.Now - TimeSpan.FromSeconds(45)); // still in the previous minute
        await using var replicaA = await LimitsHost.StartAsync(_server.ConnectionString, time: ahead);
        await using var replicaB = await LimitsHost.StartAsync(_server.ConnectionString, time: behind);
        var key = Admit.Key(rpm: 2);

        await (await replicaA.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None)).DisposeAsync();
        await (await replicaB.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None)).DisposeAsync();
        var (_, refused) = await Admit.TryAsync(() => replicaB.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None));
        Assert.Equal("rate_limit_exceeded", refused!.Code);
    }

    [Fact]
    public async Task Tpm_charges_the_prompt_estimate_at_admission_and_corrects_to_the_real_tokens_at_settle()
    {
        await using var replica = await LimitsHost.StartAsync(_server.ConnectionString, time: LimitsClock.MidMinute());
        var key = Admit.Key(tpm: 1000);

        var first = await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 2000, 10, CancellationToken.None);
        Assert.Equal(500, first.EstimatedPromptTokens);
        Assert.Equal(500, await TokensAsync(key.KeyId));
        first.Settle(0.001m, 200);
        await first.DisposeAsync();
        Assert.Equal(200, await TokensAsync(key.KeyId));

        // 200 + 500 fits; without the correction (500 + 500 + 500) the third would not have been the first refused.
        var second = await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 2000, 10, CancellationToken.None);
        var (_, refused) = await Admit.TryAsync(() => replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 2000, 10, CancellationToken.None));
        Assert.Equal("rate_limit_exceeded", refused!.Code);
        Assert.Contains("tokens per minute", refused.Message, StringComparison.Ordinal);
        Assert.Equal(30, refused.RetryAfterSeconds);

        second.Settle(0.01m, 800); // more than estimated: the completion counts too
        await second.DisposeAsync();
        Assert.Equal(1000, await TokensAsync(key.KeyId));
        var (_, full) = await Admit.TryAsync(() => replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 4, 10, CancellationToken.None));
        Assert.Equal("rate_limit_exceeded", full!.Code);
    }

    [Fact]
    public async Task A_window_counts_every_request_and_its_tokens_and_expires_two_minutes_after_it_opened()
    {
        await using var replica = await LimitsHost.StartAsync(_server.ConnectionString, time: LimitsClock.MidMinute());
        var key = Admit.Key(rpm: 100, tpm: 1_000_000);
        var rate = $"tokenrouter:rate:{{{key.KeyId}}}";
        var admitted = new List<Admission>();
        for (var i = 0; i < 3; i++)
            admitted.Add(await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None));
        var opened = await _probe.GetDatabase().KeyTimeToLiveAsync(rate);
        await Task.Delay(TimeSpan.FromMilliseconds(1100));
        admitted.Add(await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 400, 10, CancellationToken.None));

        Assert.Equal("4", (await _probe.GetDatabase().HashGetAsync(rate, "r")).ToString());
        Assert.Equal(4 * 100, await TokensAsync(key.KeyId)); // each 400-byte prompt estimated at 100 tokens
        // Later requests in the window leave its expiry as its first one set it (it outlives the minute it counts).
        var ttl = await _probe.GetDatabase().KeyTimeToLiveAsync(rate);
        Assert.True(opened is { } o && o > TimeSpan.FromSeconds(115) && o <= TimeSpan.FromMinutes(2), $"TTL at opening: {opened}");
        Assert.True(ttl is { } t && t < opened, $"TTL {ttl} after {opened}");

        foreach (var admission in admitted)
        {
            admission.Settle(0.001m, 150);
            await admission.DisposeAsync();
        }
        Assert.Equal(4 * 150, await TokensAsync(key.KeyId));
    }

    [Fact]
    public async Task Tokens_settled_after_their_window_ended_count_in_the_current_window()
    {
        var clock = LimitsClock.MidMinute();
        await using var replica = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var key = Admit.Key(tpm: 10_000);
        var longStream = await replica.Controller.AdmitAsync(key, "gpt-4o", "openai", true, 400, 5000, CancellationToken.None);
        clock.Now += TimeSpan.FromMinutes(1);
        longStream.Settle(0.05m, 4100);
        await longStream.DisposeAsync();
        Assert.Equal(4000, await TokensAsync(key.KeyId)); // real 4100 − the 100 estimated, charged to the new minute
    }

    private async Task<long> TokensAsync(string keyId) =>
        long.Parse((await _probe.GetDatabase().HashGetAsync($"tokenrouter:rate:{{{keyId}}}", "t")).ToString(), CultureInfo.InvariantCulture);
}
