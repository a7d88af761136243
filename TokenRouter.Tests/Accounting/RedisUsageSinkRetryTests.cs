using Microsoft.Extensions.Time.Testing;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Accounting;

/// <summary>The usage sink's Polly retry, on a scripted Redis and a fake clock (no test waits out a back-off).</summary>
public sealed class RedisUsageSinkRetryTests
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    private static UsageRecord Sample() => new()
    {
        RequestId = "req_retry",
        KeyId = "5f0c7f7e-0000-4000-8000-000000000001",
        Model = "gpt-4o-mini",
        Provider = "openai",
        Usage = new Usage(10, 0, 0, 0, 5),
        Timestamp = DateTimeOffset.FromUnixTimeMilliseconds(1_767_225_600_000),
    };

    [Fact]
    public async Task A_batch_failing_twice_is_retried_after_the_backoff_and_lands_once()
    {
        var redis = new ScriptedRedis { OnScript = ScriptedRedis.FailFirst(2, ScriptedRedis.ConnectionFailure) };
        var time = new FakeTimeProvider();
        var logger = new ListLogger<RedisUsageSink>();
        var sink = new RedisUsageSink(redis.Multiplexer, logger, time: time);
        await sink.StartAsync(CancellationToken.None);

        sink.Record(Sample());
        await BackgroundWork.TrueAsync(() => redis.Scripts == 1, "the first attempt never ran");
        Assert.Equal(1, sink.Backlog);
        Assert.Equal(1, logger.Count("Redis usage stream unavailable (RedisConnectionException)"));

        time.Advance(MaxBackoff); // the jittered first back-off is capped at 5 s
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "no retry after the back-off");
        Assert.Equal(1, sink.Backlog);
        time.Advance(MaxBackoff);
        await BackgroundWork.TrueAsync(() => sink.Backlog == 0, "the batch never landed");

        Assert.Equal(3, redis.Scripts);
        Assert.Equal(1, logger.Count("Redis usage stream unavailable")); // one warning per outage, not per attempt
        Assert.Equal(1, logger.Count("reachable again"));
        // The same batch (same sequence number) every time, so a retry after a timeout that landed is skipped by Redis.
        Assert.Single(redis.ScriptArguments.Select(a => (long)a[0]).Distinct());
        await sink.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_failure_that_is_not_a_Redis_error_is_not_retried()
    {
        var redis = new ScriptedRedis { OnScript = (_, _) => throw new InvalidOperationException("bug") };
        var time = new FakeTimeProvider();
        var sink = new RedisUsageSink(redis.Multiplexer, new ListLogger<RedisUsageSink>(), time: time);
        await sink.StartAsync(CancellationToken.None);

        sink.Record(Sample());
        await BackgroundWork.TrueAsync(() => sink.ExecuteTask!.IsCompleted, "the writer kept going");
        time.Advance(MaxBackoff * 4);
        await Task.Delay(50);

        Assert.Equal(1, redis.Scripts);
        await Assert.ThrowsAsync<InvalidOperationException>(() => sink.ExecuteTask!);
    }
}
