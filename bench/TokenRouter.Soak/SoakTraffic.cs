using System.Collections.Concurrent;
using System.Net.Http.Headers;

namespace TokenRouter.Soak;

/// <summary>Counts of what the clients saw, and the request ids of every request a provider served (the ledger's due).</summary>
internal sealed class SoakTally
{
    private long _sent;
    private long _hostile;
    private long _disconnects;
    private long _unexpected;

    public ConcurrentDictionary<string, byte> Served { get; } = new(StringComparer.Ordinal);
    public ConcurrentDictionary<string, int> Statuses { get; } = new(StringComparer.Ordinal);
    public ConcurrentQueue<string> Unexpected { get; } = new();

    public long Sent => Interlocked.Read(ref _sent);
    public long Hostile => Interlocked.Read(ref _hostile);
    public long Disconnects => Interlocked.Read(ref _disconnects);
    public long UnexpectedCount => Interlocked.Read(ref _unexpected);

    public void Count(SoakRequest request, int status)
    {
        Interlocked.Increment(ref _sent);
        if (request.Kind == RequestKind.Hostile) Interlocked.Increment(ref _hostile);
        if (request.Kind == RequestKind.Disconnect) Interlocked.Increment(ref _disconnects);
        Statuses.AddOrUpdate($"{request.Kind} {status}", 1, (_, n) => n + 1);
    }

    public void Fail(string what)
    {
        if (Interlocked.Increment(ref _unexpected) <= 20) Unexpected.Enqueue(what);
    }
}

/// <summary>
/// The load: workers each send one request after another (a mix of formats, streams and tools, 1 % hostile), a burst of
/// identical requests split over both replicas every few seconds, and a client that hangs up mid-stream every few
/// seconds. Every response is read to its end (or cut on purpose) and checked.
/// </summary>
internal sealed class SoakTraffic(HttpClient[] gateways, string key, SoakRequests requests, SoakTally tally)
{
    public Task RunAsync(int workers, TimeSpan burstEvery, TimeSpan disconnectEvery, CancellationToken stop)
    {
        var tasks = new List<Task>();
        for (var w = 0; w < workers; w++)
        {
            var seed = 1000 + w;
            tasks.Add(Task.Run(() => WorkerAsync(new Random(seed), stop)));
        }
        tasks.Add(Task.Run(() => EveryAsync(burstEvery, BurstAsync, stop)));
        tasks.Add(Task.Run(() => EveryAsync(disconnectEvery, DisconnectAsync, stop)));
        return Task.WhenAll(tasks);
    }

    private async Task WorkerAsync(Random random, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var roll = random.Next(100);
            var request = roll switch
            {
                0 => requests.Hostile(random),
                < 55 => requests.OpenAIChat(random, stream: random.Next(3) == 0),
                _ => requests.AnthropicMessages(random, stream: random.Next(3) == 0),
            };
            await SendAsync(gateways[random.Next(gateways.Length)], request, cutAfterFirstChunk: false);
            try
            {
                await Task.Delay(random.Next(5, 40), stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task EveryAsync(TimeSpan period, Func<Random, Task> action, CancellationToken stop)
    {
        var random = new Random(period.GetHashCode());
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(stop)) await action(random);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Eight clients send the same new request at once, half to each replica: one upstream call serves them.</summary>
    private Task BurstAsync(Random random)
    {
        var nonce = Guid.NewGuid().ToString("N");
        var stream = random.Next(2) == 0;
        var seed = random.Next();
        return Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
        {
            var request = requests.OpenAIChat(new Random(seed), stream, nonce) with { Kind = RequestKind.DedupBurst };
            return SendAsync(gateways[i % gateways.Length], request, cutAfterFirstChunk: false);
        }));
    }

    private Task DisconnectAsync(Random random)
    {
        var started = random.Next(2) == 0 ? requests.OpenAIChat(random, stream: true) : requests.AnthropicMessages(random, stream: true);
        var request = started with { Kind = RequestKind.Disconnect };
        return SendAsync(gateways[random.Next(gateways.Length)], request, cutAfterFirstChunk: true);
    }

    private async Task SendAsync(HttpClient gateway, SoakRequest request, bool cutAfterFirstChunk)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, request.Path) { Content = new ByteArrayContent(request.Body) };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var secret = request.BadKey ? "sk-tr-not-a-key-" + Guid.NewGuid().ToString("N") : key;
        if (request.Anthropic)
        {
            message.Headers.Add("x-api-key", secret);
            message.Headers.Add("anthropic-version", "2023-06-01");
        }
        else
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        }

        int status;
        try
        {
            using var response = await gateway.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            status = (int)response.StatusCode;
            var requestId = response.Headers.TryGetValues("x-request-id", out var ids) ? ids.FirstOrDefault() : null;
            await using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[8192];
            if (cutAfterFirstChunk)
            {
                // Hang up once the stream has begun: the gateway must still bill what the provider served.
                _ = await body.ReadAsync(buffer);
            }
            else
            {
                while (await body.ReadAsync(buffer) > 0)
                {
                }
            }

            if (request.Kind == RequestKind.Hostile)
            {
                if (status is < 400 or >= 500) tally.Fail($"hostile {request.Path} answered {status}");
            }
            else if (status != 200)
            {
                tally.Fail($"{request.Kind} {request.Path} answered {status}");
            }
            else if (requestId is null)
            {
                tally.Fail($"{request.Kind} {request.Path}: 200 without a request id");
            }
            else
            {
                tally.Served.TryAdd(requestId, 0);
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
        {
            status = 0;
            tally.Fail($"{request.Kind} {request.Path}: {e.GetType().Name} {e.Message}");
        }
        tally.Count(request, status);
    }
}
