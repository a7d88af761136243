using StackExchange.Redis;
using TokenRouter.Gateway.Redis;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Redis;

/// <summary>Scripts sent by their SHA1, on a Redis server of this class's own (it flushes the server's scripts).</summary>
public sealed class RedisScriptTests : IAsyncLifetime
{
    private static readonly RedisScript Echo = new("return ARGV[1] .. ':' .. KEYS[1]");
    private RedisServer _server = null!;
    private ConnectionMultiplexer _mux = null!;

    public async Task InitializeAsync()
    {
        _server = await RedisServer.StartNewAsync();
        _mux = await ConnectionMultiplexer.ConnectAsync(_server.ConnectionString + ",allowAdmin=true");
    }

    public async Task DisposeAsync()
    {
        await _mux.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task The_hash_is_the_one_Redis_computes_for_the_text()
    {
        var loaded = (string)(await _mux.GetDatabase().ExecuteAsync("SCRIPT", "LOAD", Echo.Text))!;

        Assert.Equal(loaded, Convert.ToHexStringLower(Echo.Sha1));
    }

    [Fact]
    public async Task A_script_Redis_has_forgotten_is_sent_again_with_its_text_and_is_known_afterwards()
    {
        var db = _mux.GetDatabase();
        Assert.Equal("a:k", (string?)await Echo.EvaluateAsync(db, ["k"], ["a"]));

        // What a restart or a failover to a fresh replica does to the script cache.
        await db.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.Equal(0, (long)(await db.ExecuteAsync("SCRIPT", "EXISTS", Convert.ToHexStringLower(Echo.Sha1)))[0]);

        Assert.Equal("b:k", (string?)await Echo.EvaluateAsync(db, ["k"], ["b"]));
        Assert.Equal(1, (long)(await db.ExecuteAsync("SCRIPT", "EXISTS", Convert.ToHexStringLower(Echo.Sha1)))[0]);
        Assert.Equal("c:k", (string?)await Echo.EvaluateAsync(db, ["k"], ["c"]));
    }

    [Fact]
    public async Task A_script_runs_again_after_Redis_restarts_with_an_empty_script_cache()
    {
        var db = _mux.GetDatabase();
        Assert.Equal("a:k", (string?)await Echo.EvaluateAsync(db, ["k"], ["a"]));

        await _server.StopAsync();
        await _server.StartAsync();
        string? answer = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (answer is null && DateTime.UtcNow < deadline)
        {
            try
            {
                answer = (string?)await Echo.EvaluateAsync(db, ["k"], ["b"]);
            }
            catch (RedisConnectionException)
            {
                await Task.Delay(100); // still reconnecting
            }
        }

        Assert.Equal("b:k", answer);
    }

    [Fact]
    public async Task A_failing_script_fails_once_and_is_not_sent_again()
    {
        var failing = new RedisScript("redis.call('INCR', KEYS[1]) return redis.call('NO_SUCH_COMMAND')");
        var db = _mux.GetDatabase();

        await Assert.ThrowsAsync<RedisServerException>(() => failing.EvaluateAsync(db, ["runs"], []));

        Assert.Equal(1, (long)await db.StringGetAsync("runs"));
    }
}
