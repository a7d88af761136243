using System.Diagnostics;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Formats;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Dedup;

/// <summary>The publisher's quiet call (nothing copied until a follower appears) against a scripted Redis whose answers
/// the test releases, so that a follower's announcement can be made to land while the call is being settled.</summary>
public sealed class RedisExchangePublisherTests
{
    [Fact]
    public async Task A_follower_announced_while_a_quiet_call_settles_gets_head_and_body_before_the_end()
    {
        var settle = new TaskCompletionSource<RedisResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var redis = new ScriptedRedis { OnScript = (n, _) => n == 1 ? settle.Task : Task.FromResult(RedisResult.Create((RedisValue)1)) };
        await using var broker = NewBroker(redis);
        var (exchange, publisher) = QuietCall(broker);

        exchange.Respond(200, "application/json", Body(), new Usage(2, 0, 0, 0, 1));
        await BackgroundWork.TrueAsync(() => redis.Scripts == 1, "the quiet call was never settled");
        publisher.StartMirroring(); // a follower announces itself while the settle is on its way...
        settle.SetResult(RedisResult.Create((RedisValue)1)); // ...which finds it registered: the whole response is written
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "the response was never written");

        var append = redis.ScriptArguments.ToArray()[1];
        Assert.Equal([RedisContract.DedupEntryTypes.Head, RedisContract.DedupEntryTypes.Chunk, RedisContract.DedupEntryTypes.End],
            EntryTypes(append));
    }

    [Fact]
    public async Task A_quiet_calls_settle_is_sent_by_the_thread_that_ends_the_call_before_its_clients_wake()
    {
        var redis = new ScriptedRedis { OnScript = (_, _) => Task.FromResult(RedisResult.Create((RedisValue)0)) };
        await using var broker = NewBroker(redis);
        var (exchange, _) = QuietCall(broker);
        var client = exchange.WaitForChunksAsync(0, CancellationToken.None).AsTask();
        var scriptsWhenWoken = client.ContinueWith(_ => redis.Scripts, TaskContinuationOptions.ExecuteSynchronously);

        exchange.Respond(200, "application/json", Body(), new Usage(2, 0, 0, 0, 1));

        // No thread-pool hand-off before the settle: it is on its way when Respond returns, and was before the client woke.
        Assert.Equal(1, redis.Scripts);
        Assert.Equal(1, await scriptsWhenWoken.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static RedisDedupBroker NewBroker(ScriptedRedis redis) =>
        new(redis.Multiplexer, Options.Create(new RedisDedupOptions()), new ListLogger<RedisDedupBroker>(), time: new FakeTimeProvider());

    /// <summary>A call with one client here and a publisher nobody on another replica follows yet.</summary>
    private static (InflightExchange Exchange, RedisExchangePublisher Publisher) QuietCall(RedisDedupBroker broker)
    {
        var exchange = new InflightExchange("quiet-" + Guid.NewGuid().ToString("N"), stream: false, Stopwatch.GetTimestamp());
        Assert.True(exchange.TryListen()); // its client
        var publisher = new RedisExchangePublisher(broker, exchange, "claim-1");
        exchange.Mirror = publisher;
        return (exchange, publisher);
    }

    private static PooledBufferWriter Body()
    {
        var body = new PooledBufferWriter(16);
        body.Write("{\"n\":1}"u8);
        return body;
    }

    /// <summary>The entries' types in an append script's arguments: 4 leading arguments, then per entry its id, its field
    /// count and its fields, the type first.</summary>
    private static List<string> EntryTypes(RedisValue[] args)
    {
        var types = new List<string>();
        for (var i = 4; i < args.Length; i += 2 + (int)args[i + 1]) types.Add((string)args[i + 3]!);
        return types;
    }
}
