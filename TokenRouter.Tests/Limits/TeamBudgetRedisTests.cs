using System.Collections.Concurrent;
using System.Globalization;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Limits;
using TokenRouter.Tests.Infrastructure;
using BudgetDuration = TokenRouter.Contracts.BudgetDuration;

namespace TokenRouter.Tests.Limits;

/// <summary>
/// Team budgets and limits against a real Redis, through two gateway replicas' admission controllers: a request reserves
/// against its key and its team in one script, so neither can be overshot, and periodic budgets start again on time.
/// </summary>
public sealed class TeamBudgetRedisTests : IAsyncLifetime
{
    // gpt-4o: $2.50 input, $10 output per 1M. 4000 bytes = 1000 prompt tokens ($0.0025) + 100 max tokens ($0.001).
    private const string Model = "gpt-4o";
    private const int PromptBytes = 4000;
    private const int MaxTokens = 100;
    private const decimal Reservation = 0.0035m;

    private RedisServer _server = null!;
    private LimitsHost _replicaA = null!;
    private LimitsHost _replicaB = null!;
    private ConnectionMultiplexer _probe = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.GetSharedAsync();
        _replicaA = await LimitsHost.StartAsync(_server.ConnectionString);
        _replicaB = await LimitsHost.StartAsync(_server.ConnectionString);
        _probe = await ConnectionMultiplexer.ConnectAsync(_server.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await _replicaA.DisposeAsync();
        await _replicaB.DisposeAsync();
        await _probe.DisposeAsync();
    }

    private static TeamIdentity Team(decimal? budgetUsd = null, string? duration = null, int? rpm = null, string name = "research") =>
        new(Guid.NewGuid().ToString("D"), name, budgetUsd, Parse(duration), rpm);

    private static BudgetDuration? Parse(string? duration) =>
        duration is null ? null : BudgetDuration.TryParse(duration, out var d) ? d : throw new ArgumentException(duration);

    private static ClientIdentity KeyIn(TeamIdentity team, decimal? quotaUsd = null, int? rpm = null, string? duration = null) =>
        new("key-" + Guid.NewGuid().ToString("N"), "test", new string('0', 64), quotaUsd, rpm, null, null, Parse(duration), team);

    private static ValueTask<Admission> AdmitAsync(LimitsHost host, ClientIdentity key) =>
        host.Controller.AdmitAsync(key, Model, "openai", stream: false, PromptBytes, MaxTokens, CancellationToken.None);

    [Fact]
    public async Task Two_keys_of_one_team_never_overshoot_its_budget()
    {
        var team = Team(budgetUsd: 10 * Reservation);
        var keyA = KeyIn(team);                    // no budget of its own
        var keyB = KeyIn(team, quotaUsd: 1m);      // a budget of its own, far above the team's
        var budgetNanos = QuotaEstimator.ToNanos(10 * Reservation);
        var teamHash = $"tokenrouter:quota:{{team-{team.Id}}}";
        var refused = new ConcurrentBag<ApiError>();
        var admittedB = 0;
        var admitted = 0;
        var overshoots = new ConcurrentBag<long>();
        using var stop = new CancellationTokenSource();

        var sampler = Task.Run(async () =>
        {
            var samples = 0;
            while (!stop.IsCancellationRequested || samples == 0)
            {
                var (spent, reserved) = await QuotaStateAsync(teamHash);
                if (spent + reserved > budgetNanos) overshoots.Add(spent + reserved);
                samples++;
            }
            return samples;
        });

        // 120 requests at once, the two keys through the two replicas, each settling at its full reservation.
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = Enumerable.Range(0, 120).Select(i => Task.Run(async () =>
        {
            await start.Task;
            var key = i % 2 == 0 ? keyA : keyB;
            var host = i % 4 < 2 ? _replicaA : _replicaB;
            var (admission, error) = await Admit.TryAsync(() => AdmitAsync(host, key));
            if (error is not null)
            {
                refused.Add(error);
                return;
            }
            Interlocked.Increment(ref admitted);
            if (key == keyB) Interlocked.Increment(ref admittedB);
            await using (admission!)
            {
                admission!.Settle(Reservation, 1100);
            }
        })).ToArray();
        start.SetResult();
        await Task.WhenAll(attempts);
        await stop.CancelAsync();
        Assert.True(await sampler > 0);

        Assert.Equal(10, admitted);
        Assert.Equal(110, refused.Count);
        Assert.All(refused, e =>
        {
            Assert.Equal(429, e.Status);
            Assert.Equal("insufficient_quota", e.Code);
            Assert.Contains("team 'research'", e.Message, StringComparison.Ordinal);
        });
        Assert.Empty(overshoots);
        // The team's spend is its budget to the nano-dollar, and key B's own spend is exactly its share.
        Assert.Equal((budgetNanos, 0L), await QuotaStateAsync(teamHash));
        Assert.Equal((QuotaEstimator.ToNanos(admittedB * Reservation), 0L), await QuotaStateAsync($"tokenrouter:quota:{{{keyB.KeyId}}}"));
        Assert.Equal(0, await _probe.GetDatabase().SortedSetLengthAsync($"tokenrouter:quota:{{team-{team.Id}}}:holds"));
    }

    [Fact]
    public async Task A_request_refused_by_its_team_charges_nothing_to_its_key()
    {
        var team = Team(budgetUsd: 0m);
        var key = KeyIn(team, quotaUsd: 1m, rpm: 100);

        var (_, error) = await Admit.TryAsync(() => AdmitAsync(_replicaA, key));

        Assert.Equal("insufficient_quota", error!.Code);
        Assert.StartsWith("You exceeded your team's quota: the budget of team 'research' is $0.00", error.Message, StringComparison.Ordinal);
        Assert.Equal((0L, 0L), await QuotaStateAsync($"tokenrouter:quota:{{{key.KeyId}}}"));
        Assert.False(await _probe.GetDatabase().KeyExistsAsync($"tokenrouter:rate:{{{key.KeyId}}}"));
    }

    [Fact]
    public async Task A_request_refused_by_its_key_charges_nothing_to_its_team()
    {
        var team = Team(budgetUsd: 1m, rpm: 100);
        var key = KeyIn(team, quotaUsd: 0m);

        var (_, error) = await Admit.TryAsync(() => AdmitAsync(_replicaA, key));

        Assert.StartsWith("You exceeded your current quota: this API key's budget", error!.Message, StringComparison.Ordinal);
        Assert.Equal((0L, 0L), await QuotaStateAsync($"tokenrouter:quota:{{team-{team.Id}}}"));
        Assert.False(await _probe.GetDatabase().KeyExistsAsync($"tokenrouter:rate:{{team-{team.Id}}}"));
    }

    [Fact]
    public async Task The_team_rpm_is_shared_by_its_keys_across_replicas()
    {
        var clock = LimitsClock.MidMinute();
        await using var a = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        await using var b = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var team = Team(rpm: 3);
        var first = KeyIn(team);
        var second = KeyIn(team, rpm: 100);

        await (await AdmitAsync(a, first)).DisposeAsync();
        await (await AdmitAsync(b, second)).DisposeAsync();
        await (await AdmitAsync(a, second)).DisposeAsync();
        var (_, error) = await Admit.TryAsync(() => AdmitAsync(b, first));

        Assert.Equal(429, error!.Status);
        Assert.Equal("rate_limit_exceeded", error.Code);
        Assert.Contains("on the team 'research' of this API key: Limit 3, Used 3", error.Message, StringComparison.Ordinal);
        Assert.Equal(30, error.RetryAfterSeconds);
    }

    [Fact]
    public async Task A_20s_team_budget_resets_and_its_keys_work_again()
    {
        var clock = LimitsClock.MidMinute(); // 12:00:30, so the 20 s period is 12:00:20–12:00:40
        await using var host = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var team = Team(budgetUsd: Reservation, duration: "20s");
        var key = KeyIn(team);

        var first = await AdmitAsync(host, key);
        first.Settle(Reservation, 1100);
        await first.DisposeAsync();
        var (_, refused) = await Admit.TryAsync(() => AdmitAsync(host, key));
        Assert.Equal("insufficient_quota", refused!.Code);
        Assert.Contains("The budget resets at 2030-01-01T12:00:40Z (in 10s).", refused.Message, StringComparison.Ordinal);

        clock.Now += TimeSpan.FromSeconds(10); // the next period
        var again = await AdmitAsync(host, key);
        again.Settle(Reservation / 2, 600);
        await again.DisposeAsync();

        var start = new DateTimeOffset(2030, 1, 1, 12, 0, 40, TimeSpan.Zero).ToUnixTimeSeconds();
        Assert.Equal((QuotaEstimator.ToNanos(Reservation / 2), 0L), await QuotaStateAsync($"tokenrouter:quota:{{team-{team.Id}}}:p{start}"));
        Assert.Equal((QuotaEstimator.ToNanos(Reservation), 0L), await QuotaStateAsync($"tokenrouter:quota:{{team-{team.Id}}}:p{start - 20}"));
        // Old periods' hashes are forgotten by Redis itself (no cron).
        Assert.True(await _probe.GetDatabase().KeyTimeToLiveAsync($"tokenrouter:quota:{{team-{team.Id}}}:p{start}") is { } ttl && ttl > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_20s_key_budget_resets_and_the_key_works_again()
    {
        var clock = LimitsClock.MidMinute();
        await using var host = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var key = new ClientIdentity("key-" + Guid.NewGuid().ToString("N"), "test", new string('0', 64), Reservation,
            BudgetDuration: Parse("20s"));

        var first = await AdmitAsync(host, key);
        first.Settle(Reservation, 1100);
        await first.DisposeAsync();
        var (_, refused) = await Admit.TryAsync(() => AdmitAsync(host, key));
        Assert.Equal("insufficient_quota", refused!.Code);
        Assert.Contains("this API key's budget is $0.0035 for the period that started 2030-01-01T12:00:20Z", refused.Message, StringComparison.Ordinal);

        clock.Now += TimeSpan.FromSeconds(10);
        await (await AdmitAsync(host, key)).DisposeAsync();
    }

    [Fact]
    public async Task A_monthly_team_budget_refusal_names_the_reset_at_the_first_of_next_month()
    {
        var clock = new LimitsClock(new DateTimeOffset(2030, 1, 15, 9, 0, 0, TimeSpan.Zero));
        await using var host = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var key = KeyIn(Team(budgetUsd: 0m, duration: "1mo"));

        var (_, error) = await Admit.TryAsync(() => AdmitAsync(host, key));

        Assert.Contains("The budget resets at 2030-02-01T00:00:00Z", error!.Message, StringComparison.Ordinal);
        var anthropic = System.Text.Encoding.UTF8.GetString(Gateway.Formats.ApiErrorResult.Serialize(error, Gateway.Formats.ApiFormat.Anthropic));
        Assert.Contains("\"type\":\"rate_limit_error\"", anthropic, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Calendar_budgets_follow_the_configured_time_zone()
    {
        // 23:30 UTC on 31 January is 00:30 on 1 February in Berlin: a new month there.
        var clock = new LimitsClock(new DateTimeOffset(2030, 1, 31, 23, 30, 0, TimeSpan.Zero));
        await using var host = await LimitsHost.StartAsync(_server.ConnectionString,
            new Dictionary<string, string?> { ["BUDGET_TIME_ZONE"] = "Europe/Berlin" }, clock);
        var key = KeyIn(Team(budgetUsd: 0m, duration: "1mo"));

        var (_, error) = await Admit.TryAsync(() => AdmitAsync(host, key));

        Assert.Contains("for the period that started 2030-01-31T23:00:00Z", error!.Message, StringComparison.Ordinal);
        Assert.Contains("The budget resets at 2030-02-28T23:00:00Z", error.Message, StringComparison.Ordinal);
    }

    // The contract's layout, spelled out here so a change on either side shows up as a failing test.
    private async Task<(long Spent, long Reserved)> QuotaStateAsync(string hash)
    {
        var values = await _probe.GetDatabase().HashGetAsync(hash, ["spent", "reserved"]);
        return (Parse(values[0]), Parse(values[1]));
        static long Parse(RedisValue v) => v.IsNull ? 0 : long.Parse(v.ToString(), CultureInfo.InvariantCulture);
    }
}
