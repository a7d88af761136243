using TokenRouter.Gateway.Limits;

namespace TokenRouter.Tests.Limits;

/// <summary>The in-process concurrency counters, directly and through the admission controller.</summary>
public sealed class ConcurrencyLimitTests
{
    private static LimitsOptions Limits(int global = 0, int stream = 0, int nonStream = 0, int provider = 0) =>
        new() { GlobalConcurrent = global, StreamConcurrent = stream, NonStreamConcurrent = nonStream, ProviderConcurrent = provider };

    [Fact]
    public void Counters_never_exceed_their_limit_and_refuse_all_or_nothing()
    {
        var limiter = new ConcurrencyLimiter();
        var limits = Limits(global: 3, stream: 2, provider: 2);

        Assert.Equal(ConcurrencyRejection.None, limiter.TryAcquire(true, "openai", limits, out var a));
        Assert.Equal(ConcurrencyRejection.None, limiter.TryAcquire(true, "anthropic", limits, out var b));
        Assert.Equal(ConcurrencyRejection.Stream, limiter.TryAcquire(true, "deepseek", limits, out _));
        Assert.Equal(ConcurrencyRejection.None, limiter.TryAcquire(false, "openai", limits, out var c));
        Assert.Equal(ConcurrencyRejection.Global, limiter.TryAcquire(false, "deepseek", limits, out _));
        Assert.Equal((3, 2, 1), (limiter.Global, limiter.Stream, limiter.NonStream));
        Assert.Equal(2, limiter.Provider("openai"));
        Assert.Equal(0, limiter.Provider("deepseek")); // refused requests leave nothing behind

        limiter.Release(true, a!);
        Assert.Equal(ConcurrencyRejection.Provider, limiter.TryAcquire(false, "openai", Limits(provider: 1), out _));
        Assert.Equal((2, 1, 1), (limiter.Global, limiter.Stream, limiter.NonStream));
        limiter.Release(true, b!);
        limiter.Release(false, c!);
        Assert.Equal((0, 0, 0), (limiter.Global, limiter.Stream, limiter.NonStream));
        Assert.Equal(0, limiter.Provider("openai"));
    }

    [Fact]
    public async Task Under_contention_exactly_the_limit_is_admitted_and_everything_is_released()
    {
        var limiter = new ConcurrencyLimiter();
        var limits = Limits(global: 7);
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var taken = new System.Collections.Concurrent.ConcurrentBag<System.Runtime.CompilerServices.StrongBox<int>>();
        var tasks = Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            if (limiter.TryAcquire(false, "openai", limits, out var slot) == ConcurrencyRejection.None) taken.Add(slot!);
        })).ToArray();
        start.SetResult();
        await Task.WhenAll(tasks);

        Assert.Equal(7, taken.Count);
        Assert.Equal(7, limiter.Global);
        foreach (var slot in taken) limiter.Release(false, slot);
        Assert.Equal(0, limiter.Global);
    }

    [Theory]
    [InlineData("GLOBAL_CONCURRENT_LIMIT", false, "concurrent gateway")]
    [InlineData("STREAM_CONCURRENT_LIMIT", true, "concurrent streaming")]
    [InlineData("NON_STREAM_CONCURRENT_LIMIT", false, "concurrent non-streaming")]
    [InlineData("PROVIDER_CONCURRENT_LIMIT", false, "concurrent provider")]
    public async Task Each_concurrency_limit_refuses_with_429_and_retry_after_one_second(string variable, bool stream, string message)
    {
        await using var host = await LimitsHost.StartAsync(null, new Dictionary<string, string?> { [variable] = "2" });
        var key = Admit.Key();
        var one = await host.Controller.AdmitAsync(key, "gpt-4o", "openai", stream, 100, null, CancellationToken.None);
        var two = await host.Controller.AdmitAsync(key, "gpt-4o", "openai", stream, 100, null, CancellationToken.None);

        var (_, error) = await Admit.TryAsync(() => host.Controller.AdmitAsync(key, "gpt-4o", "openai", stream, 100, null, CancellationToken.None));
        Assert.Equal(429, error!.Status);
        Assert.Equal("concurrency_limit_exceeded", error.Code);
        Assert.Equal("rate_limit_error", error.Type);
        Assert.Equal(1, error.RetryAfterSeconds);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);

        await one.DisposeAsync();
        await one.DisposeAsync(); // a second dispose gives nothing back twice
        var three = await host.Controller.AdmitAsync(key, "gpt-4o", "openai", stream, 100, null, CancellationToken.None);
        var (_, still) = await Admit.TryAsync(() => host.Controller.AdmitAsync(key, "gpt-4o", "openai", stream, 100, null, CancellationToken.None));
        Assert.NotNull(still);
        await two.DisposeAsync();
        await three.DisposeAsync();
        Assert.Equal(0, host.Controller.Concurrency.Global);
    }

    [Fact]
    public async Task The_provider_limit_counts_each_provider_separately()
    {
        await using var host = await LimitsHost.StartAsync(null, new Dictionary<string, string?> { ["Limits:ProviderConcurrent"] = "1" });
        var key = Admit.Key();
        await using var openai = await host.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 100, null, CancellationToken.None);
        await using var anthropic = await host.Controller.AdmitAsync(key, "claude-sonnet-4-5", "anthropic", false, 100, null, CancellationToken.None);
        var (_, error) = await Admit.TryAsync(() => host.Controller.AdmitAsync(key, "gpt-4o-mini", "openai", false, 100, null, CancellationToken.None));
        Assert.Equal("concurrency_limit_exceeded", error!.Code);
    }

    [Fact]
    public async Task Dedup_followers_take_no_concurrency_slot()
    {
        await using var host = await LimitsHost.StartAsync(null, new Dictionary<string, string?> { ["Limits:GlobalConcurrent"] = "1" });
        var key = Admit.Key();
        await using var leader = await host.Controller.AdmitAsync(key, "gpt-4o", "openai", false, 100, null, CancellationToken.None);
        await using var follower1 = await host.Controller.AdmitFollowerAsync(key, "gpt-4o", CancellationToken.None);
        await using var follower2 = await host.Controller.AdmitFollowerAsync(key, "gpt-4o", CancellationToken.None);
        Assert.Equal(1, host.Controller.Concurrency.Global);
    }
}
