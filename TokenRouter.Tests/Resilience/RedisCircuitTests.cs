using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TokenRouter.Gateway.Resilience;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Resilience;

/// <summary>The breaker in front of the hot path's Redis calls, on a real connection, with Redis's failures simulated by
/// the calls themselves (a timeout is what a hanging Redis produces).</summary>
public sealed class RedisCircuitTests : IAsyncLifetime
{
    private static readonly TimeSpan Probe = TimeSpan.FromSeconds(2);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-07T12:00:00Z"));
    private ConnectionMultiplexer _connection = null!;
    private RedisCircuit _circuit = null!;
    private int _calls;

    public async Task InitializeAsync()
    {
        var redis = await RedisServer.GetSharedAsync();
        _connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        _circuit = new RedisCircuit(_connection, Options.Create(new RedisOutageOptions { ProbeInterval = Probe }), _time,
            NullLogger<RedisCircuit>.Instance);
    }

    public async Task DisposeAsync() => await _connection.DisposeAsync();

    private ValueTask<string> CallAsync(bool fail) =>
        _circuit.ExecuteAsync(static s => s.Self.Run(s.Fail), (Self: this, Fail: fail));

    private async ValueTask<string> Run(bool fail)
    {
        Interlocked.Increment(ref _calls);
        await Task.Yield(); // completes asynchronously, as a Redis reply does
        if (fail) throw new RedisTimeoutException(CommandFlags.None, "Timeout awaiting response", CommandStatus.Sent);
        await _connection.GetDatabase().PingAsync();
        return "pong";
    }

    [Fact]
    public async Task Two_timeouts_in_a_row_open_the_circuit_and_calls_then_fail_at_once_without_reaching_redis()
    {
        await TimesOutAsync();
        Assert.False(_circuit.IsDown); // one failure is below the minimum throughput
        await TimesOutAsync();

        Assert.True(_circuit.IsDown);
        var calls = _calls;
        await Assert.ThrowsAsync<RedisConnectionException>(() => CallAsync(fail: false).AsTask());
        Assert.Equal(calls, _calls);
    }

    [Fact]
    public async Task A_failure_among_successes_below_half_of_the_calls_keeps_the_circuit_closed()
    {
        for (var i = 0; i < 3; i++) Assert.Equal("pong", await CallAsync(fail: false));
        await TimesOutAsync();

        Assert.False(_circuit.IsDown);
        Assert.Equal("pong", await CallAsync(fail: false));
    }

    [Fact]
    public async Task Failures_more_than_the_sampling_window_apart_do_not_add_up()
    {
        await TimesOutAsync();
        _time.Advance(TimeSpan.FromSeconds(11));
        await TimesOutAsync();

        Assert.False(_circuit.IsDown);
    }

    [Fact]
    public async Task After_the_probe_interval_one_call_probes_and_a_success_closes_the_circuit()
    {
        await OpenAsync();
        _time.Advance(Probe);
        Assert.False(_circuit.IsDown); // the break is over: a call may probe

        var gate = new TaskCompletionSource();
        var probe = _circuit.ExecuteAsync(static async g => { await g.Task; return "probed"; }, gate).AsTask();
        // While the probe is out, every other call is refused at once.
        await Assert.ThrowsAsync<RedisConnectionException>(() => CallAsync(fail: false).AsTask());
        gate.SetResult();
        Assert.Equal("probed", await probe);

        Assert.False(_circuit.IsDown);
        Assert.Equal("pong", await CallAsync(fail: false));
        Assert.Equal("pong", await CallAsync(fail: false));
        await TimesOutAsync();
        Assert.False(_circuit.IsDown); // closed afresh: the failures before the break no longer count
    }

    [Fact]
    public async Task A_failed_probe_opens_the_circuit_for_another_interval()
    {
        await OpenAsync();
        _time.Advance(Probe);

        await TimesOutAsync();

        Assert.True(_circuit.IsDown);
        _time.Advance(Probe - TimeSpan.FromMilliseconds(1));
        Assert.True(_circuit.IsDown);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(_circuit.IsDown);
    }

    [Fact]
    public async Task A_call_failing_for_another_reason_is_no_verdict_on_redis_and_frees_the_probe()
    {
        await OpenAsync();
        _time.Advance(Probe);

        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            _circuit.ExecuteAsync<string, int>(static _ => throw new InvalidOperationException("a bug"), 0).AsTask());

        Assert.False(_circuit.IsDown);
        Assert.Equal("pong", await CallAsync(fail: false)); // the probe slot was given back: this call probes and closes
        Assert.False(_circuit.IsDown);
    }

    /// <summary>A timed-out call reaches its caller as the RedisException callers degrade on, the timeout inside.</summary>
    private async Task TimesOutAsync()
    {
        var failure = await Assert.ThrowsAsync<RedisException>(() => CallAsync(fail: true).AsTask());
        Assert.IsType<RedisTimeoutException>(failure.InnerException);
    }

    private async Task OpenAsync()
    {
        await TimesOutAsync();
        await TimesOutAsync();
        Assert.True(_circuit.IsDown);
    }
}
