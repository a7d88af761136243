using System.Collections.Concurrent;
using System.Globalization;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Limits;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Limits;

/// <summary>Quotas against a real Redis: reservations are atomic, settle to the real cost and never overshoot.</summary>
public sealed class QuotaAdmissionRedisTests : IAsyncLifetime
{
    // gpt-4o: $2.50 input, $10 output per 1M. 4000 bytes = 1000 prompt tokens ($0.0025) + 100 max tokens ($0.001).
    private const string Model = "gpt-4o";
    private const int PromptBytes = 4000;
    private const int MaxTokens = 100;
    private const decimal Reservation = 0.0035m;

    private RedisServer _server = null!;
    private LimitsHost _host = null!;
    private ConnectionMultiplexer _probe = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.GetSharedAsync();
        _host = await LimitsHost.StartAsync(_server.ConnectionString);
        _probe = await ConnectionMultiplexer.ConnectAsync(_server.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _probe.DisposeAsync();
    }

    [Fact]
    public async Task Hundred_concurrent_requests_against_a_quota_of_ten_reservations_admit_exactly_ten_and_never_overshoot()
    {
        var key = Admit.Key(quotaUsd: 10 * Reservation);
        var quotaNanos = QuotaEstimator.ToNanos(10 * Reservation);
        var refused = new ConcurrentBag<Gateway.Errors.ApiError>();
        var admitted = 0;
        var overshoots = new ConcurrentBag<long>();
        using var stop = new CancellationTokenSource();

        // Samples spend + reservations while the burst runs: it must never pass the quota.
        var sampler = Task.Run(async () =>
        {
            var samples = 0;
            while (!stop.IsCancellationRequested || samples == 0)
            {
                var (spent, reserved) = await QuotaStateAsync(key.KeyId);
                if (spent + reserved > quotaNanos) overshoots.Add(spent + reserved);
                samples++;
            }
            return samples;
        });

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = Enumerable.Range(0, 100).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            var (admission, error) = await Admit.TryAsync(() =>
                _host.Controller.AdmitAsync(key, Model, "openai", stream: false, PromptBytes, MaxTokens, CancellationToken.None));
            if (error is not null)
            {
                refused.Add(error);
                return;
            }
            Interlocked.Increment(ref admitted);
            await using (admission!)
            {
                Assert.Equal(Reservation, admission!.ReservedUsd);
                admission.Settle(Reservation, 1100); // the real cost: all max tokens used
            }
        })).ToArray();
        start.SetResult();
        await Task.WhenAll(attempts);
        await stop.CancelAsync();
        Assert.True(await sampler > 0);

        Assert.Equal(10, admitted);
        Assert.Equal(90, refused.Count);
        Assert.All(refused, e =>
        {
            Assert.Equal(429, e.Status);
            Assert.Equal("insufficient_quota", e.Code);
            Assert.Equal("insufficient_quota", e.Type);
            Assert.Null(e.RetryAfterSeconds);
        });
        Assert.Empty(overshoots);
        Assert.Equal((quotaNanos, 0L), await QuotaStateAsync(key.KeyId));
        Assert.Equal(0, await _probe.GetDatabase().SortedSetLengthAsync($"tokenrouter:quota:{{{key.KeyId}}}:holds"));
    }

    [Fact]
    public async Task Settling_below_the_reservation_frees_quota_for_later_requests()
    {
        var key = Admit.Key(quotaUsd: 10 * Reservation);
        var first = new List<Admission>();
        for (var i = 0; i < 10; i++) first.Add(await AdmitAsync(key));
        var (_, full) = await Admit.TryAsync(() => new ValueTask<Admission>(AdmitAsync(key)));
        Assert.Equal("insufficient_quota", full!.Code);
        Assert.Equal((0L, QuotaEstimator.ToNanos(10 * Reservation)), await QuotaStateAsync(key.KeyId));

        foreach (var admission in first)
        {
            admission.Settle(Reservation / 2, 600);
            await admission.DisposeAsync();
        }
        Assert.Equal((QuotaEstimator.ToNanos(5 * Reservation), 0L), await QuotaStateAsync(key.KeyId));

        var later = new List<Admission>();
        for (var i = 0; i < 5; i++) later.Add(await AdmitAsync(key));
        var (_, again) = await Admit.TryAsync(() => new ValueTask<Admission>(AdmitAsync(key)));
        Assert.Equal("insufficient_quota", again!.Code);
        foreach (var admission in later) await admission.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_without_settle_releases_the_reservation_at_zero_cost()
    {
        var key = Admit.Key(quotaUsd: Reservation);
        await using (await AdmitAsync(key))
        {
            Assert.Equal((0L, QuotaEstimator.ToNanos(Reservation)), await QuotaStateAsync(key.KeyId));
        }
        Assert.Equal((0L, 0L), await QuotaStateAsync(key.KeyId));
        await (await AdmitAsync(key)).DisposeAsync();
    }

    [Fact]
    public async Task An_unpriced_model_reserves_nothing_is_flagged_and_is_refused_once_the_quota_is_spent()
    {
        var key = Admit.Key(quotaUsd: Reservation);
        var unpriced = await _host.Controller.AdmitAsync(key, "mystery-model-7", "openai", false, PromptBytes, MaxTokens, CancellationToken.None);
        Assert.True(unpriced.Unpriced);
        Assert.Equal(0m, unpriced.ReservedUsd);
        unpriced.Settle(null, 1100);
        await unpriced.DisposeAsync();
        Assert.Equal((0L, 0L), await QuotaStateAsync(key.KeyId));

        var priced = await AdmitAsync(key);
        priced.Settle(Reservation, 1100);
        await priced.DisposeAsync();

        var (_, error) = await Admit.TryAsync(() =>
            _host.Controller.AdmitAsync(key, "mystery-model-7", "openai", false, PromptBytes, MaxTokens, CancellationToken.None));
        Assert.Equal("insufficient_quota", error!.Code);
    }

    [Fact]
    public async Task A_reservation_left_by_a_replica_that_died_is_released_after_its_ttl()
    {
        var clock = LimitsClock.MidMinute();
        await using var replica = await LimitsHost.StartAsync(_server.ConnectionString, time: clock);
        var key = Admit.Key(quotaUsd: Reservation);
        // Admitted and never settled nor disposed: what a crashed gateway leaves behind.
        _ = await replica.Controller.AdmitAsync(key, Model, "openai", false, PromptBytes, MaxTokens, CancellationToken.None);
        var (_, blocked) = await Admit.TryAsync(() =>
            replica.Controller.AdmitAsync(key, Model, "openai", false, PromptBytes, MaxTokens, CancellationToken.None));
        Assert.Equal("insufficient_quota", blocked!.Code);

        clock.Now += new LimitsOptions().QuotaReservationTtl + TimeSpan.FromSeconds(1);
        var admitted = await replica.Controller.AdmitAsync(key, Model, "openai", false, PromptBytes, MaxTokens, CancellationToken.None);
        Assert.Equal((0L, QuotaEstimator.ToNanos(Reservation)), await QuotaStateAsync(key.KeyId));
        await admitted.DisposeAsync();
    }

    [Fact]
    public async Task A_hold_that_expires_before_every_other_is_still_released_on_time()
    {
        var clock = LimitsClock.MidMinute();
        await using var patient = await ReplicaAsync("02:00:00", clock);
        await using var hasty = await ReplicaAsync("00:01:00", clock);
        var key = Admit.Key(quotaUsd: 2 * Reservation);
        await using var running = await AdmitAsync(patient, key);
        // Expires in a minute, long before the running request's hold: the hash's earliest expiry must come down to it.
        _ = await AdmitAsync(hasty, key);
        var (_, blocked) = await Admit.TryAsync(() => new ValueTask<Admission>(AdmitAsync(patient, key)));
        Assert.Equal("insufficient_quota", blocked!.Code);

        clock.Now += TimeSpan.FromSeconds(61);
        await using var admitted = await AdmitAsync(patient, key);
        Assert.Equal((0L, QuotaEstimator.ToNanos(2 * Reservation)), await QuotaStateAsync(key.KeyId));
    }

    [Fact]
    public async Task After_a_sweep_the_next_one_comes_when_the_earliest_hold_left_expires()
    {
        var clock = LimitsClock.MidMinute();
        await using var patient = await ReplicaAsync("02:00:00", clock);
        await using var hasty = await ReplicaAsync("00:01:00", clock);
        var key = Admit.Key(quotaUsd: 3 * Reservation);
        _ = await AdmitAsync(hasty, key); // expires at +60 s
        clock.Now += TimeSpan.FromSeconds(30);
        _ = await AdmitAsync(hasty, key); // expires at +90 s
        clock.Now += TimeSpan.FromSeconds(31);
        // Sweeps the first; the second is now the earliest, not this request's hold two hours out.
        await using var first = await AdmitAsync(patient, key);
        Assert.Equal((0L, QuotaEstimator.ToNanos(2 * Reservation)), await QuotaStateAsync(key.KeyId));

        clock.Now += TimeSpan.FromSeconds(30);
        await using var second = await AdmitAsync(patient, key);
        Assert.Equal((0L, QuotaEstimator.ToNanos(2 * Reservation)), await QuotaStateAsync(key.KeyId));
    }

    [Fact]
    public async Task Holds_without_an_earliest_expiry_are_swept_at_the_next_admission()
    {
        // What a gateway from before the earliest-expiry field leaves behind: a reservation and its expired hold, no 'x'.
        var key = Admit.Key(quotaUsd: Reservation);
        var nanos = QuotaEstimator.ToNanos(Reservation);
        var holds = $"tokenrouter:quota:{{{key.KeyId}}}:holds";
        var db = _probe.GetDatabase();
        await db.HashSetAsync($"tokenrouter:quota:{{{key.KeyId}}}", "reserved", nanos);
        await db.SortedSetAddAsync(holds, $"dead-1:{nanos}", DateTimeOffset.UtcNow.AddSeconds(-1).ToUnixTimeMilliseconds());

        await using var admitted = await AdmitAsync(key);
        Assert.Equal((0L, nanos), await QuotaStateAsync(key.KeyId));
        Assert.Equal(1, await db.SortedSetLengthAsync(holds));
    }

    [Fact]
    public async Task The_quota_refusal_renders_as_anthropic_rate_limit_error_on_messages()
    {
        var key = Admit.Key(quotaUsd: 0m);
        var (_, error) = await Admit.TryAsync(() => new ValueTask<Admission>(AdmitAsync(key)));
        var json = System.Text.Encoding.UTF8.GetString(Gateway.Formats.ApiErrorResult.Serialize(error!, Gateway.Formats.ApiFormat.Anthropic));
        Assert.StartsWith("You exceeded your current quota", error!.Message, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"error\"", json, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"rate_limit_error\"", json, StringComparison.Ordinal);
        var openAi = System.Text.Encoding.UTF8.GetString(Gateway.Formats.ApiErrorResult.Serialize(error!, Gateway.Formats.ApiFormat.OpenAI));
        Assert.Contains("\"code\":\"insufficient_quota\"", openAi, StringComparison.Ordinal);
    }

    private Task<Admission> AdmitAsync(Gateway.Auth.ClientIdentity key) => AdmitAsync(_host, key);

    private static async Task<Admission> AdmitAsync(LimitsHost replica, Gateway.Auth.ClientIdentity key) =>
        await replica.Controller.AdmitAsync(key, Model, "openai", stream: false, PromptBytes, MaxTokens, CancellationToken.None);

    /// <summary>A gateway replica whose reservations expire after <paramref name="holdTtl"/>.</summary>
    private Task<LimitsHost> ReplicaAsync(string holdTtl, LimitsClock clock) =>
        LimitsHost.StartAsync(_server.ConnectionString, new Dictionary<string, string?> { ["Limits:QuotaReservationTtl"] = holdTtl }, clock);

    // The contract's layout, spelled out here so a change on either side shows up as a failing test.
    private async Task<(long Spent, long Reserved)> QuotaStateAsync(string keyId)
    {
        var values = await _probe.GetDatabase().HashGetAsync($"tokenrouter:quota:{{{keyId}}}", ["spent", "reserved"]);
        return (Parse(values[0]), Parse(values[1]));
        static long Parse(RedisValue v) => v.IsNull ? 0 : long.Parse(v.ToString(), CultureInfo.InvariantCulture);
    }
}
