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
        var broker = new RedisDedupBroker(redis.Multiplexer, Options.Create(new RedisDedupOptions()), new ListLogger<RedisDedupBroker>(),
            time: new FakeTimeProvider());
        await using var _ = broker;
        var exchange = new InflightExchange("quiet-" + Guid.NewGuid().ToString("N"), stream: false, Stopwatch.GetTimestamp());
        Assert.True(exchange.TryListen()); // its client
        var publisher = new RedisExchangePublisher(broker, exchange, "claim-1");
        exchange.Mirror = publisher;
        var body = new PooledBufferWriter(16);
        body.Write("{\"n\":1}"u8);

        exchange.Respond(200, "application/json", body, new Usage(2, 0, 0, 0, 1));
        await BackgroundWork.TrueAsync(() => redis.Scripts == 1, "the quiet call was never settled");
        publisher.StartMirroring(); // a follower announces itself while the settle is on its way...
        settle.SetResult(RedisResult.Create((RedisValue)1)); // ...which finds it registered: the whole response is written
        await BackgroundWork.TrueAsync(() => redis.Scripts == 2, "the response was never written");

        var append = redis.ScriptArguments.ToArray()[1];
        Assert.Equal([RedisContract.DedupEntryTypes.Head, RedisContract.DedupEntryTypes.Chunk, RedisContract.DedupEntryTypes.End],
            EntryTypes(append));
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
