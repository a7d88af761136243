using System.Diagnostics;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Dedup;

/// <summary>The dedup publisher's Polly retry (three more tries after 50 ms, 250 ms and 1 s, ±20 %), on a fake clock.</summary>
public sealed class RedisDedupBrokerRetryTests
{
    private static async Task<(RedisDedupBroker Broker, RedisExchangePublisher Publisher)> BrokerAsync(ScriptedRedis redis,
        FakeTimeProvider time, ListLogger<RedisDedupBroker>? logger = null)
    {
        var broker = new RedisDedupBroker(redis.Multiplexer, Options.Create(new RedisDedupOptions()),
            logger ?? new ListLogger<RedisDedupBroker>(), time: time);
        var exchange = new InflightExchange("retry-" + Guid.NewGuid().ToString("N"), stream: true, Stopwatch.GetTimestamp());
        await Task.CompletedTask;
        return (broker, new RedisExchangePublisher(broker, exchange, "claim-1"));
    }

    [Fact]
    public async Task A_batch_failing_twice_is_retried_after_50_then_250_ms_and_succeeds()
    {
        var redis = new ScriptedRedis { OnScript = ScriptedRedis.FailFirst(2, ScriptedRedis.Timeout) };
        var time = new FakeTimeProvider();
        var (broker, publisher) = await BrokerAsync(redis, time);
        await using var _ = broker;

        var append = broker.AppendAsync(publisher, [], 1, final: false);
        await BackgroundWork.TrueAsync(() => redis.Scripts == 1, "the first attempt never ran");
        time.Advance(TimeSpan.FromMilliseconds(39)); // below 50 ms - 20 %
        await Task.Delay(30);
        Assert.Equal(1, redis.Scripts);
        time.Advance(TimeSpan.FromMilliseconds(21)); // 60 ms: above 50 ms + 20 %
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "no retry after the first delay");
        time.Advance(TimeSpan.FromMilliseconds(199)); // below 250 ms - 20 %
        await Task.Delay(30);
        Assert.Equal(2, redis.Scripts);
        time.Advance(TimeSpan.FromMilliseconds(101)); // 300 ms
        await BackgroundWork.TrueAsync(() => append.IsCompleted, "no retry after the second delay");

        Assert.True(await append);
        Assert.Equal(3, redis.Scripts);
    }

    [Fact]
    public async Task A_batch_that_keeps_failing_gets_three_retries_then_the_publisher_gives_up()
    {
        var redis = new ScriptedRedis { OnScript = (_, _) => throw ScriptedRedis.ConnectionFailure() };
        var time = new FakeTimeProvider();
        var logger = new ListLogger<RedisDedupBroker>();
        var (broker, publisher) = await BrokerAsync(redis, time, logger);
        await using var _ = broker;

        var append = broker.AppendAsync(publisher, [], 1, final: false);
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            await BackgroundWork.TrueAsync(() => redis.Scripts == attempt, $"attempt {attempt} never ran");
            time.Advance(TimeSpan.FromSeconds(2));
        }
        await BackgroundWork.TrueAsync(() => append.IsCompleted, "the last retry never ran");

        Assert.False(await append);
        Assert.Equal(4, redis.Scripts);
        Assert.Single(logger.Entries);
    }

    [Fact]
    public async Task An_error_that_is_not_a_Redis_failure_is_not_retried()
    {
        var redis = new ScriptedRedis { OnScript = (_, _) => throw new InvalidOperationException("bug") };
        var time = new FakeTimeProvider();
        var (broker, publisher) = await BrokerAsync(redis, time);
        await using var _ = broker;

        await Assert.ThrowsAsync<InvalidOperationException>(() => broker.AppendAsync(publisher, [], 1, final: false));
        Assert.Equal(1, redis.Scripts);
    }

    [Fact]
    public async Task A_disposed_broker_does_not_retry()
    {
        var redis = new ScriptedRedis { OnScript = (_, _) => throw ScriptedRedis.ConnectionFailure() };
        var time = new FakeTimeProvider();
        var (broker, publisher) = await BrokerAsync(redis, time);
        await broker.DisposeAsync();

        Assert.False(await broker.AppendAsync(publisher, [], 1, final: false));
        Assert.Equal(1, redis.Scripts);
    }
}
