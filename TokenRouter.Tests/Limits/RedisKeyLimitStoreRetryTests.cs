using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TokenRouter.Gateway.Limits;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Limits;

/// <summary>The deferred settlements' Polly retry (200 ms doubling to 5 s, jittered), on a scripted Redis and a fake clock.</summary>
public sealed class RedisKeyLimitStoreRetryTests
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    private static KeySettlement Settlement() => new("key-1", "hold-1", 1000, 400, null, 0, 1_767_225_600_000);

    private static string FirstAttemptFlag(RedisValue[] args) => (string)args[3]!;

    [Fact]
    public async Task A_settlement_Redis_refused_is_retried_in_the_background_until_it_lands()
    {
        // The request's own attempt and the first background one fail; the second background one lands.
        var redis = new ScriptedRedis { OnScript = ScriptedRedis.FailFirst(2, ScriptedRedis.ConnectionFailure) };
        var time = new FakeTimeProvider();
        var logger = new ListLogger<RedisKeyLimitStore>();
        await using var store = new RedisKeyLimitStore(redis.Multiplexer, logger, time);

        await store.SettleAsync(Settlement());
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "the background retry never ran");
        Assert.Equal(1, store.PendingSettlements);

        time.Advance(MaxBackoff);
        await BackgroundWork.TrueAsync(() => store.PendingSettlements == 0, "the settlement never landed");

        Assert.Equal(3, redis.Scripts);
        // A connection failure means the script was never sent: every retry may still count as the first attempt.
        Assert.All(redis.ScriptArguments, args => Assert.Equal("1", FirstAttemptFlag(args)));
        Assert.Equal(1, logger.Count("retrying in the background"));
        Assert.Equal(1, logger.Count("Redis answers again"));
    }

    [Fact]
    public async Task After_a_failure_that_may_have_run_the_script_the_retry_no_longer_counts_as_the_first_attempt()
    {
        var redis = new ScriptedRedis { OnScript = ScriptedRedis.FailFirst(2, () => new RedisException("test: the script may have run")) };
        var time = new FakeTimeProvider();
        await using var store = new RedisKeyLimitStore(redis.Multiplexer, new ListLogger<RedisKeyLimitStore>(), time);

        await store.SettleAsync(Settlement());
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "the background retry never ran");
        time.Advance(MaxBackoff);
        await BackgroundWork.TrueAsync(() => store.PendingSettlements == 0, "the settlement never landed");

        Assert.Equal(["1", "0", "0"], redis.ScriptArguments.Select(FirstAttemptFlag));
    }

    [Fact]
    public async Task No_retry_runs_before_the_backoff_has_passed()
    {
        var redis = new ScriptedRedis { OnScript = ScriptedRedis.FailFirst(2, ScriptedRedis.ConnectionFailure) };
        var time = new FakeTimeProvider();
        await using var store = new RedisKeyLimitStore(redis.Multiplexer, new ListLogger<RedisKeyLimitStore>(), time);

        await store.SettleAsync(Settlement());
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "the background retry never ran");
        await Task.Delay(100); // real time passes, the fake clock does not

        Assert.Equal(2, redis.Scripts);
        Assert.Equal(1, store.PendingSettlements);
    }
}
