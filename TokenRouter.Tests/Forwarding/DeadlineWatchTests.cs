using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Tests.Forwarding;

public sealed class DeadlineWatchTests
{
    [Fact]
    public void A_deadline_that_fires_while_the_client_is_there_is_a_timeout()
    {
        using var client = new CancellationTokenSource();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(client.Token);
        using var watch = new DeadlineWatch(deadline.Token, client.Token);

        deadline.Cancel(); // what CancelAfter's timer does
        client.Cancel(); // then YARP aborts the client's connection

        Assert.True(watch.TimedOut);
    }

    [Fact]
    public void A_deadline_cancelled_because_the_client_left_is_not_a_timeout()
    {
        using var client = new CancellationTokenSource();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(client.Token);
        using var watch = new DeadlineWatch(deadline.Token, client.Token);

        client.Cancel();

        Assert.True(deadline.IsCancellationRequested);
        Assert.False(watch.TimedOut);
    }

    [Fact]
    public void A_deadline_that_has_not_fired_is_not_a_timeout()
    {
        using var client = new CancellationTokenSource();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(client.Token);
        using var watch = new DeadlineWatch(deadline.Token, client.Token);

        Assert.False(watch.TimedOut);
    }
}
