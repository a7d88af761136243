using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Limits;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Limits;

/// <summary>Configuration of the limits, the off switch, and what each mode needs from Redis.</summary>
public sealed class AdmissionSwitchesTests
{
    [Fact]
    public async Task Seed_variables_configure_the_limits()
    {
        await using var host = await LimitsHost.StartAsync(null, new Dictionary<string, string?>
        {
            ["RATE_LIMIT_ENABLED"] = "false",
            ["GLOBAL_CONCURRENT_LIMIT"] = "11",
            ["STREAM_CONCURRENT_LIMIT"] = "12",
            ["NON_STREAM_CONCURRENT_LIMIT"] = "13",
            ["PROVIDER_CONCURRENT_LIMIT"] = "14",
        });
        var o = host.Service<IOptions<LimitsOptions>>().Value;
        Assert.False(o.Enabled);
        Assert.Equal((11, 12, 13, 14), (o.GlobalConcurrent, o.StreamConcurrent, o.NonStreamConcurrent, o.ProviderConcurrent));
    }

    [Fact]
    public async Task Limits_are_on_by_default_and_unlimited_when_absent()
    {
        await using var host = await LimitsHost.StartAsync(null);
        var o = host.Service<IOptions<LimitsOptions>>().Value;
        Assert.True(o.Enabled);
        Assert.Equal((0, 0, 0, 0), (o.GlobalConcurrent, o.StreamConcurrent, o.NonStreamConcurrent, o.ProviderConcurrent));
        Assert.Equal(4096, o.QuotaDefaultMaxTokens);
    }

    [Fact]
    public async Task A_negative_limit_fails_validation_with_a_message_naming_the_variable()
    {
        await using var host = await LimitsHost.StartAsync(null, new Dictionary<string, string?> { ["STREAM_CONCURRENT_LIMIT"] = "-1" });
        var error = Assert.Throws<OptionsValidationException>(() => host.Service<IOptions<LimitsOptions>>().Value);
        Assert.Contains("STREAM_CONCURRENT_LIMIT", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disabled_switch_turns_off_concurrency_and_rate_limits_but_not_quotas()
    {
        var redis = await RedisServer.GetSharedAsync();
        await using var host = await LimitsHost.StartAsync(redis.ConnectionString, new Dictionary<string, string?>
        {
            ["RATE_LIMIT_ENABLED"] = "false",
            ["GLOBAL_CONCURRENT_LIMIT"] = "1",
        }, LimitsClock.MidMinute());
        var limited = Admit.Key(rpm: 1, tpm: 10);
        var held = new List<Admission>();
        for (var i = 0; i < 3; i++)
            held.Add(await host.Controller.AdmitAsync(limited, "gpt-4o", "openai", false, 4000, 100, CancellationToken.None));

        var reservation = QuotaEstimator.WorstCaseCostUsd(PriceTable.ListPrices["gpt-4o"], 4000, 100, 4096);
        var budgeted = Admit.Key(quotaUsd: reservation);
        held.Add(await host.Controller.AdmitAsync(budgeted, "gpt-4o", "openai", false, 4000, 100, CancellationToken.None));
        var (_, error) = await Admit.TryAsync(() => host.Controller.AdmitAsync(budgeted, "gpt-4o", "openai", false, 4000, 100, CancellationToken.None));
        Assert.Equal("insufficient_quota", error!.Code);

        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        Assert.False(await probe.GetDatabase().KeyExistsAsync($"tokenrouter:rate:{{{limited.KeyId}}}"));
        foreach (var admission in held) await admission.DisposeAsync();
    }

    [Fact]
    public async Task Without_limits_a_key_needs_no_redis_and_with_redis_down_quota_keys_fail_closed_and_rate_keys_fail_open()
    {
        await using var redis = await RedisServer.StartNewAsync();
        await using var host = await LimitsHost.StartAsync($"{redis.ConnectionString},abortConnect=false,asyncTimeout=1000,syncTimeout=1000,connectTimeout=1000");
        await redis.StopAsync();

        await using (await host.Controller.AdmitAsync(Admit.Key(), "gpt-4o", "openai", true, 4000, 100, CancellationToken.None))
        {
            // No quota and no RPM/TPM: admitted on the local counters alone.
        }
        await using (await host.Controller.AdmitAsync(Admit.Key(rpm: 1), "gpt-4o", "openai", true, 4000, 100, CancellationToken.None))
        {
            // Rate limits fail open: availability over a short Redis outage.
        }
        var (_, error) = await Admit.TryAsync(() =>
            host.Controller.AdmitAsync(Admit.Key(quotaUsd: 100m), "gpt-4o", "openai", true, 4000, 100, CancellationToken.None));
        Assert.Equal(503, error!.Status);
        Assert.Equal("quota_store_unavailable", error.Code);
        Assert.Equal(2, error.RetryAfterSeconds); // RedisOutage:RetryAfterSeconds
        Assert.Equal(0, host.Controller.Concurrency.Global);
    }

    [Fact]
    public async Task Embedded_mode_enforces_quota_and_rpm_in_process()
    {
        await using var host = await LimitsHost.StartAsync(null, time: LimitsClock.MidMinute());
        Assert.IsType<LocalKeyLimitStore>(host.Store);
        var reservation = QuotaEstimator.WorstCaseCostUsd(PriceTable.ListPrices["gpt-4o"], 4000, 100, 4096);
        var key = Admit.Key(quotaUsd: 4 * reservation, rpm: 100);

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = Enumerable.Range(0, 40).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            return await Admit.TryAsync(() => host.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 4000, 100, CancellationToken.None));
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(attempts);
        var admitted = results.Where(r => r.Admission is not null).Select(r => r.Admission!).ToList();
        Assert.Equal(4, admitted.Count);
        Assert.Equal(36, results.Count(r => r.Error?.Code == "insufficient_quota"));

        var store = (LocalKeyLimitStore)host.Store;
        foreach (var admission in admitted)
        {
            admission.Settle(reservation / 4, 1000);
            await admission.DisposeAsync();
        }
        Assert.Equal((QuotaEstimator.ToNanos(reservation), 0L), store.QuotaState(key.KeyId));

        var rpmKey = Admit.Key(rpm: 2);
        await (await host.Controller.AdmitAsync(rpmKey, "gpt-4o", "openai", false, 40, 1, CancellationToken.None)).DisposeAsync();
        await (await host.Controller.AdmitFollowerAsync(rpmKey, "gpt-4o", CancellationToken.None)).DisposeAsync();
        var (_, refused) = await Admit.TryAsync(() => host.Controller.AdmitFollowerAsync(rpmKey, "gpt-4o", CancellationToken.None));
        Assert.Equal("rate_limit_exceeded", refused!.Code);
    }
}
