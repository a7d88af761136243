using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Tests.Forwarding;

public sealed class UpstreamDeadlineTests
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task A_deadline_passes_after_its_timeout_and_is_not_reused()
    {
        var pool = new DeadlinePool(4);
        var deadline = pool.Start(TimeSpan.FromMilliseconds(20), CancellationToken.None);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.Delay(TimeSpan.FromSeconds(30), deadline.Token));
        Assert.True(deadline.IsCancellationRequested);
        deadline.Dispose();
        var next = pool.Start(Long, CancellationToken.None);
        Assert.NotSame(deadline, next);
        Assert.False(next.IsCancellationRequested);
    }

    [Fact]
    public void A_deadline_is_cancelled_with_what_it_is_linked_to_even_when_that_was_already_cancelled()
    {
        var pool = new DeadlinePool(4);
        using var exchange = new CancellationTokenSource();
        var deadline = pool.Start(Long, exchange.Token);
        Assert.False(deadline.IsCancellationRequested);

        exchange.Cancel();

        Assert.True(deadline.IsCancellationRequested);
        Assert.True(pool.Start(Long, exchange.Token).IsCancellationRequested);
    }

    [Fact]
    public void A_returned_deadline_is_reused_and_its_old_link_no_longer_reaches_it()
    {
        var pool = new DeadlinePool(4);
        using var first = new CancellationTokenSource();
        using var second = new CancellationTokenSource();
        var deadline = pool.Start(Long, first.Token);
        var registered = false;
        deadline.Token.Register(() => registered = true);
        deadline.Dispose();

        var again = pool.Start(Long, second.Token);
        first.Cancel();

        Assert.Same(deadline, again);
        Assert.False(again.IsCancellationRequested);
        Assert.False(registered); // the previous request's callbacks went with it
        second.Cancel();
        Assert.True(again.IsCancellationRequested);
    }

    [Fact]
    public void A_deadline_whose_link_was_cancelled_is_not_reused()
    {
        var pool = new DeadlinePool(4);
        using var exchange = new CancellationTokenSource();
        var cancelled = pool.Start(Long, exchange.Token);
        exchange.Cancel();
        cancelled.Dispose();

        var next = pool.Start(Long, CancellationToken.None);

        Assert.NotSame(cancelled, next);
        Assert.False(next.IsCancellationRequested);
    }

    [Fact]
    public void Disposing_a_deadline_twice_keeps_it_once()
    {
        var pool = new DeadlinePool(4);
        var deadline = pool.Start(Long, CancellationToken.None);
        deadline.Dispose();
        deadline.Dispose();

        var a = pool.Start(Long, CancellationToken.None);
        var b = pool.Start(Long, CancellationToken.None);

        Assert.NotSame(a, b);
    }

    [Fact]
    public void The_pool_keeps_no_more_than_its_capacity()
    {
        var pool = new DeadlinePool(2);
        var rented = Enumerable.Range(0, 3).Select(_ => pool.Start(Long, CancellationToken.None)).ToArray();
        foreach (var deadline in rented) deadline.Dispose();

        var again = Enumerable.Range(0, 3).Select(_ => pool.Start(Long, CancellationToken.None)).ToArray();

        Assert.Equal(2, again.Count(rented.Contains));
    }

    [Fact]
    public async Task Concurrent_rentals_never_share_a_deadline_and_never_inherit_another_requests_cancellation()
    {
        var pool = new DeadlinePool(8);
        var holders = new HashSet<UpstreamDeadline>();
        var shared = 0;
        var inherited = 0;
        var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                using var link = new CancellationTokenSource();
                var deadline = pool.Start(Long, link.Token);
                lock (holders)
                {
                    if (!holders.Add(deadline)) shared++;
                }
                if (deadline.IsCancellationRequested) Interlocked.Increment(ref inherited);
                // Every third request is cancelled (the client left): that source must not come back.
                if (i % 3 == worker % 3) link.Cancel();
                lock (holders) holders.Remove(deadline);
                deadline.Dispose();
            }
        })).ToArray();

        await Task.WhenAll(workers);

        Assert.Equal(0, shared);
        Assert.Equal(0, inherited);
    }
}
