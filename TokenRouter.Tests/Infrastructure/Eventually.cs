namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// Waits for work the code under test finishes in the background (a usage record written as a handler ends, a Redis
/// stream drained, a listener attached): polls the condition, and fails saying what was awaited after a timeout far
/// beyond any healthy run. The one place tests poll real time; timings are never asserted.
/// </summary>
public static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public static Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        TrueAsync(() => Task.FromResult(condition()), () => what, timeout);

    public static Task TrueAsync(Func<bool> condition, Func<string> describe, TimeSpan? timeout = null) =>
        TrueAsync(() => Task.FromResult(condition()), describe, timeout);

    public static Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null) =>
        TrueAsync(condition, () => what, timeout);

    public static async Task TrueAsync(Func<Task<bool>> condition, Func<string> describe, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var started = TimeProvider.System.GetTimestamp();
        var pause = TimeSpan.FromMilliseconds(5);
        while (!await condition())
        {
            if (TimeProvider.System.GetElapsedTime(started) > limit)
                throw new Xunit.Sdk.XunitException($"Timed out after {limit.TotalSeconds:0.#} s waiting for: {describe()}");
            await Task.Delay(pause);
            // Quick for what is nearly done, gentle on the CPU for what takes seconds.
            if (pause < TimeSpan.FromMilliseconds(100)) pause *= 2;
        }
    }
}
