using System.Diagnostics;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using static TokenRouter.Tests.Dedup.DedupTestKit;

namespace TokenRouter.Tests.Dedup;

/// <summary>The exchange's waits: what wakes a waiting client, what does not, and on which thread it resumes.</summary>
public sealed class InflightExchangeTests
{
    private static InflightExchange NewExchange(bool stream = false)
    {
        var exchange = new InflightExchange("exchange-" + Guid.NewGuid().ToString("N"), stream, Stopwatch.GetTimestamp());
        Assert.True(exchange.TryListen());
        return exchange;
    }

    private static PooledBufferWriter Body(ReadOnlySpan<byte> bytes)
    {
        var body = new PooledBufferWriter(bytes.Length);
        body.Write(bytes);
        return body;
    }

    [Fact]
    public async Task A_whole_response_stays_readable_until_its_last_listener_leaves_and_is_gone_after()
    {
        var exchange = NewExchange();
        Assert.True(exchange.TryListen());
        using var body = Body("{\"answer\":42}"u8);

        exchange.Respond(200, "application/json", body, new Usage(5, 1, 0, 0, 2));

        Assert.Equal(0, body.WrittenCount); // the exchange took the rented array over instead of copying it
        exchange.Leave();
        Assert.Equal(1, await exchange.WaitForChunksAsync(0, CancellationToken.None));
        Assert.Equal("{\"answer\":42}"u8.ToArray(), exchange.Chunk(0).ToArray());
        exchange.Leave();
        // The array is back in the pool: nothing of the exchange points into it any more.
        Assert.Equal(0, await exchange.WaitForChunksAsync(0, CancellationToken.None));
        Assert.False(exchange.TryListen());
    }

    [Fact]
    public async Task A_stream_read_straight_into_its_body_keeps_every_chunk_intact_across_pages_until_the_last_listener_leaves()
    {
        var exchange = NewExchange(stream: true);
        // NewExchange gave it its one listener.
        exchange.SetHead(200, "text/event-stream");
        var sent = new List<byte>();
        // Reads of every size, a total of several pages (4 KB, then doubling): each read lands where the last one ended.
        for (var i = 0; i < 200; i++)
        {
            var room = exchange.GetAppendBuffer();
            var n = Math.Min(room.Length, 1 + i * 37 % 700);
            for (var b = 0; b < n; b++) room.Span[b] = (byte)(i + b);
            sent.AddRange(room.Span[..n].ToArray());
            exchange.Commit(n);
        }
        exchange.Append(new byte[10_000]); // a feed's copy larger than any room left, spread over pages
        sent.AddRange(new byte[10_000]);
        exchange.Complete(new Usage(5, 1, 0, 0, 2));

        var count = await exchange.WaitForChunksAsync(0, CancellationToken.None);
        var received = new List<byte>();
        for (var i = 0; i < count; i++) received.AddRange(exchange.Chunk(i).ToArray());
        Assert.Equal(sent, received);
        Assert.Equal(sent.Count, exchange.BodyBytes);

        exchange.Leave();
        // The pages are back in the pool: nothing of the exchange points into them any more.
        Assert.Equal(0, await exchange.WaitForChunksAsync(0, CancellationToken.None));
    }

    [Fact]
    public async Task A_stream_everyone_left_gives_its_pages_back_when_the_producer_ends_it()
    {
        var exchange = NewExchange(stream: true);
        // NewExchange gave it its one listener.
        exchange.SetHead(200, "text/event-stream");
        exchange.Append("data: 1\n\n"u8);
        exchange.Leave(); // the last listener left mid-stream: the upstream call is cancelled, the body still held
        Assert.True(exchange.Upstream.IsCancellationRequested);
        Assert.Equal(1, await exchange.WaitForChunksAsync(0, CancellationToken.None));

        exchange.Fail(new ApiError(499, "api_error", "Every client left."));

        Assert.Equal(0, await exchange.WaitForChunksAsync(0, CancellationToken.None));
    }

    [Fact]
    public async Task A_wait_for_what_is_already_there_completes_at_once()
    {
        var exchange = NewExchange(stream: true);
        exchange.SetHead(200, "text/event-stream");
        exchange.Append("data: 1\n\n"u8);

        Assert.True(exchange.WaitForHeadAsync(CancellationToken.None).IsCompletedSuccessfully);
        var chunks = exchange.WaitForChunksAsync(0, CancellationToken.None);
        Assert.True(chunks.IsCompletedSuccessfully);
        Assert.Equal(1, await chunks);
        Assert.False(exchange.WaitForChunksAsync(1, CancellationToken.None).IsCompleted);
    }

    [Fact]
    public async Task A_whole_response_wakes_a_waiting_client_with_head_body_and_completion_together()
    {
        var exchange = NewExchange();
        var head = exchange.WaitForHeadAsync(CancellationToken.None);
        Assert.False(head.IsCompleted);

        exchange.Respond(200, "application/json", Body("{\"ok\":true}"u8), new Usage(5, 1, 0, 0, 2));

        await head.AsTask().WaitAsync(Bounded);
        Assert.Equal(200, exchange.Status);
        Assert.Equal("application/json", exchange.ContentType);
        Assert.Equal(new Usage(5, 1, 0, 0, 2), exchange.Usage);
        Assert.True(exchange.IsCompleted);
        Assert.Equal(1, await exchange.WaitForChunksAsync(0, CancellationToken.None));
        Assert.Equal("{\"ok\":true}"u8.ToArray(), exchange.Chunk(0).ToArray());
        // Over: a wait past the last chunk returns at once with nothing more.
        Assert.Equal(1, await exchange.WaitForChunksAsync(1, CancellationToken.None));
    }

    [Fact]
    public async Task A_client_that_leaves_stops_waiting_while_the_others_keep_waiting()
    {
        var exchange = NewExchange(stream: true);
        exchange.SetHead(200, "text/event-stream");
        using var leaving = new CancellationTokenSource();
        var gone = exchange.WaitForChunksAsync(0, leaving.Token).AsTask();
        var staying = exchange.WaitForChunksAsync(0, CancellationToken.None).AsTask();

        await leaving.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => gone.WaitAsync(Bounded));
        Assert.False(staying.IsCompleted);
        exchange.Append("data: 1\n\n"u8);
        Assert.Equal(1, await staying.WaitAsync(Bounded));
    }

    [Fact]
    public async Task A_wait_past_the_chunks_there_is_not_woken_by_the_head()
    {
        var exchange = NewExchange(stream: true);
        var chunks = exchange.WaitForChunksAsync(0, CancellationToken.None).AsTask();

        exchange.SetHead(200, "text/event-stream");
        Assert.False(chunks.IsCompleted);

        exchange.Append("data: 1\n\n"u8);
        exchange.Append("data: 2\n\n"u8);
        Assert.InRange(await chunks.WaitAsync(Bounded), 1, 2);
    }

    [Fact]
    public async Task A_failure_before_any_head_ends_the_wait_for_the_head_and_for_chunks()
    {
        var exchange = NewExchange();
        var head = exchange.WaitForHeadAsync(CancellationToken.None).AsTask();
        var chunks = exchange.WaitForChunksAsync(0, CancellationToken.None).AsTask();

        exchange.Fail(ApiError.BadGateway("The provider is unreachable."));

        await head.WaitAsync(Bounded);
        Assert.Equal(0, await chunks.WaitAsync(Bounded));
        Assert.Equal(0, exchange.Status);
        Assert.Equal(502, exchange.Error?.Status);
    }

    [Fact]
    public async Task A_slow_client_resumes_on_the_thread_pool_never_on_the_producers_thread()
    {
        var exchange = NewExchange(stream: true);
        exchange.SetHead(200, "text/event-stream");
        using var release = new ManualResetEventSlim();
        var wait = exchange.WaitForChunksAsync(0, CancellationToken.None);
        Assert.False(wait.IsCompleted);
        var client = Slowly(wait, release);

        // Were the client's continuation run inline, Append would not return until the client is released.
        var produced = Task.Factory.StartNew(() => exchange.Append("data: 1\n\n"u8), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await produced.WaitAsync(Bounded);
        Assert.False(client.IsCompleted);

        release.Set();
        Assert.Equal(1, await client.WaitAsync(Bounded));

        static async Task<int> Slowly(ValueTask<int> wait, ManualResetEventSlim release)
        {
            var count = await wait.ConfigureAwait(false); // no test synchronization context to post it for us
            release.Wait(Bounded);
            return count;
        }
    }
}
