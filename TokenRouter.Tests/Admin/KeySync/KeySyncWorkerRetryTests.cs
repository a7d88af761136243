using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using TokenRouter.Admin.Configuration;
using TokenRouter.Admin.KeySync;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Admin.KeySync;

/// <summary>The key sync worker's Polly retry (RetryDelay doubling to MaxRetryDelay, jittered), on a fake clock.</summary>
public sealed class KeySyncWorkerRetryTests
{
    private static readonly KeySyncOptions Settings = new() { RetryDelay = TimeSpan.FromSeconds(2), MaxRetryDelay = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task A_round_failing_twice_is_retried_after_the_backoff_and_succeeds()
    {
        var time = new FakeTimeProvider();
        var logger = new ListLogger<KeySyncWorker>();
        var pipeline = KeySyncWorker.CreateRetryPipeline(Settings, time, logger);
        var rounds = 0;

        var run = pipeline.ExecuteAsync(_ => ValueTask.FromResult(++rounds <= 2
            ? new KeySyncWorker.SyncRound(RedisResync.Keys, 1, "Redis is not connected")
            : new KeySyncWorker.SyncRound(RedisResync.None, 1, null))).AsTask();

        await BackgroundWork.TrueAsync(() => logger.Entries.Count == 1, "the failed round was not logged");
        Assert.Equal(1, rounds);
        time.Advance(TimeSpan.FromSeconds(60)); // the jittered back-off is capped at MaxRetryDelay
        await BackgroundWork.TrueAsync(() => logger.Entries.Count == 2, "no retry after the first back-off");
        Assert.Equal(2, rounds);
        time.Advance(TimeSpan.FromSeconds(60));
        await BackgroundWork.TrueAsync(() => run.IsCompleted, "no retry after the second back-off");

        Assert.Null((await run).Failure);
        Assert.Equal(3, rounds);
        Assert.All(logger.Entries, e => Assert.Contains("Redis still unreachable for sync (resync: Keys, keys: 1); retrying in", e.Message));
    }

    [Fact]
    public async Task A_successful_round_is_not_retried()
    {
        var pipeline = KeySyncWorker.CreateRetryPipeline(Settings, new FakeTimeProvider(), new ListLogger<KeySyncWorker>());
        var rounds = 0;

        var round = await pipeline.ExecuteAsync(_ => ValueTask.FromResult(new KeySyncWorker.SyncRound(RedisResync.None, ++rounds, null)));

        Assert.Equal(1, round.Count);
    }

    [Fact]
    public async Task The_worker_retries_while_Redis_is_not_connected_only_as_the_fake_clock_passes_and_stops_at_once()
    {
        // Redis "not connected": the worker hands the key back to the queue and waits; no Postgres is touched.
        var redis = new ScriptedRedis { OnIsConnected = _ => false };
        var time = new FakeTimeProvider();
        var queue = new KeySyncQueue();
        var logger = new ListLogger<KeySyncWorker>();
        using var services = new ServiceCollection().BuildServiceProvider();
        using var worker = new KeySyncWorker(queue, new ApiKeyRedisWriter(redis.Multiplexer, time),
            services.GetRequiredService<IServiceScopeFactory>(), Options.Create(Settings), time, logger);
        await worker.StartAsync(CancellationToken.None);

        queue.Enqueue(Guid.NewGuid());
        await BackgroundWork.TrueAsync(() => logger.Entries.Count == 1, "the first round never ran");
        Assert.Equal(1, redis.ConnectedChecks);
        await Task.Delay(100); // real time passes, the fake clock does not
        Assert.Equal(1, redis.ConnectedChecks);

        time.Advance(TimeSpan.FromSeconds(60));
        await BackgroundWork.TrueAsync(() => redis.ConnectedChecks == 2, "no retry after the back-off");
        Assert.False(queue.IsEmpty); // still queued

        await worker.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
    }
}
