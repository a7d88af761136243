using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// A scriptable fake LLM provider: a real Kestrel server on 127.0.0.1 with an ephemeral port. It answers every
/// method and path, records every request, and answers with the responder the test chose (default:
/// <see cref="FakeResponses.Auto"/> — Anthropic format for <c>.../messages</c>, OpenAI format otherwise).
/// </summary>
/// <remarks>
/// Order per request: read body → record → wait at the <see cref="Gate"/> → take the next queued responder
/// (<see cref="RespondNext"/>) or else the current one (<see cref="Respond"/>) → answer.
/// All members are thread-safe.
/// </remarks>
public sealed class FakeProvider : IAsyncDisposable
{
    private const string ServerDroppedKey = "FakeProvider.ServerDropped";

    private readonly WebApplication _app;
    private readonly List<RecordedRequest> _requests = [];
    private readonly ConcurrentQueue<ArrivedRequest> _arrivals = new();
    private long _bodyBytesReceived;
    private readonly ConcurrentQueue<Func<RecordedRequest, HttpContext, Task>> _next = new();
    private readonly ConcurrentQueue<Exception> _handlerErrors = new();
    private readonly CancellationTokenSource _disposing = new();
    private Func<RecordedRequest, HttpContext, Task> _responder = FakeResponses.Auto();
    private TaskCompletionSource _gate = CompletedGate();
    private TaskCompletionSource _changed = NewSignal();
    private int _callCount;
    private int _cancelledCount;
    private int _inFlight;
    private int _waitingAtGate;
    private int _disposed;

    private FakeProvider(WebApplication app)
    {
        _app = app;
        BaseUrl = null!;
    }

    /// <summary>Starts a fake provider on <c>http://127.0.0.1:&lt;ephemeral port&gt;</c>.</summary>
    public static async Task<FakeProvider> StartAsync(CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(options =>
        {
            options.Listen(IPAddress.Loopback, 0);
            options.AddServerHeader = false;
            options.Limits.MinRequestBodyDataRate = null;
            options.Limits.MinResponseDataRate = null;
            options.Limits.MaxRequestBodySize = null;
        });
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = TimeSpan.FromSeconds(5));

        var app = builder.Build();
        var provider = new FakeProvider(app);
        app.Run(provider.HandleAsync);
        await app.StartAsync(cancellationToken);

        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        provider.BaseUrl = new Uri(address.TrimEnd('/'));
        return provider;
    }

    /// <summary>e.g. <c>http://127.0.0.1:PORT/</c>.</summary>
    public Uri BaseUrl { get; private set; }

    /// <summary>OpenAI SDK style base including <c>/v1</c>: <c>http://127.0.0.1:PORT/v1</c>.</summary>
    public Uri OpenAIBaseUrl => new(BaseUrl, "/v1");

    /// <summary>Anthropic style base without <c>/v1</c> (the client appends <c>/v1/messages</c>).</summary>
    public Uri AnthropicBaseUrl => BaseUrl;

    /// <summary>DeepSeek style base without <c>/v1</c> (the client appends <c>/chat/completions</c>).</summary>
    public Uri DeepSeekBaseUrl => BaseUrl;

    /// <summary>Snapshot of every recorded request, in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>The most recent request, or null.</summary>
    public RecordedRequest? LastRequest
    {
        get
        {
            lock (_requests)
            {
                return _requests.Count == 0 ? null : _requests[^1];
            }
        }
    }

    /// <summary>
    /// Every request as it arrived (request line and headers), before its body is read: unlike <see cref="Requests"/>
    /// it also holds requests whose body never arrived in full (the client aborted the upload).
    /// </summary>
    public IReadOnlyList<ArrivedRequest> Arrivals => [.. _arrivals];

    /// <summary>Total request body bytes read from all requests, including those whose upload was aborted midway.</summary>
    public long BodyBytesReceived => Interlocked.Read(ref _bodyBytesReceived);

    /// <summary>Number of requests received (recorded once their body has been read).</summary>
    public int CallCount => Volatile.Read(ref _callCount);

    /// <summary>Number of requests the client aborted before the fake finished answering them.</summary>
    public int CancelledCount => Volatile.Read(ref _cancelledCount);

    /// <summary>Number of requests currently being handled.</summary>
    public int InFlightCount => Volatile.Read(ref _inFlight);

    /// <summary>Number of requests currently held at a closed <see cref="Gate"/>.</summary>
    public int WaitingAtGateCount => Volatile.Read(ref _waitingAtGate);

    /// <summary>Exceptions thrown by responders (other than cancellations and deliberate drops).</summary>
    public IReadOnlyList<Exception> HandlerErrors => [.. _handlerErrors];

    /// <summary>
    /// The gate every request awaits (after being recorded, before being answered). Open (completed) by default.
    /// A request waits on the gate that was current when it arrived. Use <see cref="CloseGate"/> /
    /// <see cref="OpenGate"/>, or set your own <see cref="TaskCompletionSource"/> and complete it.
    /// </summary>
    public TaskCompletionSource Gate
    {
        get => Volatile.Read(ref _gate);
        set => Volatile.Write(ref _gate, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Makes new requests wait until <see cref="OpenGate"/>. Returns the (new or already closed) gate.</summary>
    public TaskCompletionSource CloseGate()
    {
        while (true)
        {
            var current = Gate;
            if (!current.Task.IsCompleted)
            {
                return current;
            }

            var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (Interlocked.CompareExchange(ref _gate, closed, current) == current)
            {
                return closed;
            }
        }
    }

    /// <summary>Releases every request held at the current gate; later requests pass straight through.</summary>
    public void OpenGate() => Gate.TrySetResult();

    /// <summary>Sets the responder for all following requests.</summary>
    public void Respond(Func<RecordedRequest, HttpContext, Task> handler) =>
        Volatile.Write(ref _responder, handler ?? throw new ArgumentNullException(nameof(handler)));

    /// <summary>Queues a one-shot responder; queued responders are used first, in order, then <see cref="Respond"/>'s.</summary>
    public void RespondNext(Func<RecordedRequest, HttpContext, Task> handler) =>
        _next.Enqueue(handler ?? throw new ArgumentNullException(nameof(handler)));

    public void RespondOpenAIText(string text, OpenAIUsage usage) => Respond(FakeResponses.OpenAIText(text, usage));

    public void RespondOpenAIToolCall(string toolName, string argumentsJson, OpenAIUsage usage) =>
        Respond(FakeResponses.OpenAIToolCall(toolName, argumentsJson, usage));

    public void RespondDeepSeekText(string text, OpenAIUsage usage) => Respond(FakeResponses.DeepSeekText(text, usage));

    public void RespondAnthropicText(string text, AnthropicUsage usage) => Respond(FakeResponses.AnthropicText(text, usage));

    public void RespondAnthropicToolUse(string name, string inputJson, AnthropicUsage usage) =>
        Respond(FakeResponses.AnthropicToolUse(name, inputJson, usage));

    public void RespondError(int status, string body, string contentType = "application/json") =>
        Respond(FakeResponses.Error(status, body, contentType));

    public void RespondHang() => Respond(FakeResponses.Hang());

    public void RespondStreamThenDrop(int eventsBeforeDrop) => Respond(FakeResponses.StreamThenDrop(eventsBeforeDrop));

    public void RespondSlowStream(TimeSpan delayBetweenEvents, string text = FakeResponses.DefaultText) =>
        Respond(FakeResponses.SlowStream(delayBetweenEvents, text));

    public void RespondAfter(TimeSpan delay, Func<RecordedRequest, HttpContext, Task> handler) =>
        Respond(FakeResponses.After(delay, handler));

    /// <summary>Waits until at least <paramref name="count"/> requests were received; throws <see cref="TimeoutException"/> otherwise.</summary>
    public Task WaitForCallsAsync(int count, TimeSpan timeout) =>
        WaitUntilAsync(() => CallCount >= count, timeout, () => $"expected ≥{count} calls, got {CallCount}");

    /// <summary>Waits until at least <paramref name="count"/> requests were cancelled by their client.</summary>
    public Task WaitForCancelledAsync(int count, TimeSpan timeout) =>
        WaitUntilAsync(() => CancelledCount >= count, timeout, () => $"expected ≥{count} cancelled, got {CancelledCount}");

    /// <summary>Waits until at least <paramref name="count"/> requests are held at the closed gate.</summary>
    public Task WaitForWaitingAtGateAsync(int count, TimeSpan timeout) =>
        WaitUntilAsync(() => WaitingAtGateCount >= count, timeout, () => $"expected ≥{count} waiting at the gate, got {WaitingAtGateCount}");

    /// <summary>Waits until no request is being handled.</summary>
    public Task WaitForIdleAsync(TimeSpan timeout) =>
        WaitUntilAsync(() => InFlightCount == 0, timeout, () => $"expected no request in flight, got {InFlightCount}");

    /// <summary>Forgets recorded requests, counters, queued responders and errors; restores the default responder; opens the gate.</summary>
    public void Reset()
    {
        OpenGate();
        lock (_requests)
        {
            _requests.Clear();
            Volatile.Write(ref _callCount, 0);
        }

        Volatile.Write(ref _cancelledCount, 0);
        _arrivals.Clear();
        Interlocked.Exchange(ref _bodyBytesReceived, 0);
        _next.Clear();
        _handlerErrors.Clear();
        Respond(FakeResponses.Auto());
        Signal();
    }

    /// <summary>
    /// Aborts the request's connection on purpose (not counted as a client cancellation). Waits briefly first so
    /// bytes already flushed reach the client before the connection goes away.
    /// </summary>
    public static async Task DropConnectionAsync(HttpContext context)
    {
        context.Items[ServerDroppedKey] = true;
        await Task.Delay(TimeSpan.FromMilliseconds(100), CancellationToken.None);
        context.Abort();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _disposing.CancelAsync();
        using (var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            try
            {
                await _app.StopAsync(stopTimeout.Token);
            }
            catch (OperationCanceledException)
            {
                // Kestrel aborts whatever is left.
            }
        }

        await _app.DisposeAsync();
        _disposing.Dispose();
    }

    public override string ToString() => $"FakeProvider {BaseUrl} ({CallCount} calls)";

    private async Task HandleAsync(HttpContext context)
    {
        var clientAborted = context.RequestAborted;
        using var aborted = CancellationTokenSource.CreateLinkedTokenSource(clientAborted, _disposing.Token);
        context.RequestAborted = aborted.Token;
        Interlocked.Increment(ref _inFlight);
        RecordedRequest? recorded = null;
        try
        {
            _arrivals.Enqueue(ArrivedRequest.From(context));
            recorded = await RecordAsync(context, aborted.Token);

            var gate = Gate;
            if (!gate.Task.IsCompleted)
            {
                Interlocked.Increment(ref _waitingAtGate);
                Signal();
                try
                {
                    await gate.Task.WaitAsync(aborted.Token);
                }
                finally
                {
                    Interlocked.Decrement(ref _waitingAtGate);
                }
            }

            var handler = _next.TryDequeue(out var queued) ? queued : Volatile.Read(ref _responder);
            await handler(recorded, context);
            recorded.Completed = true;
        }
        catch (Exception) when (IsServerDropped(context))
        {
            recorded?.Completed = true;
        }
        catch (Exception) when (clientAborted.IsCancellationRequested)
        {
            recorded?.WasCancelled = true;
            Interlocked.Increment(ref _cancelledCount);
        }
        catch (Exception) when (_disposing.IsCancellationRequested)
        {
            // Shutting down: never let a held or hanging request look like an (empty) answer.
            context.Abort();
        }
        catch (Exception ex)
        {
            _handlerErrors.Enqueue(ex);
            if (!context.Response.HasStarted)
            {
                context.Response.StatusCode = StatusCodes.Status500InternalServerError;
                await context.Response.WriteAsync($"FakeProvider responder threw: {ex}", CancellationToken.None);
            }
            else
            {
                context.Abort();
            }
        }
        finally
        {
            if (IsServerDropped(context))
            {
                recorded?.Completed = true;
            }

            Interlocked.Decrement(ref _inFlight);
            Signal();
        }
    }

    private async Task<RecordedRequest> RecordAsync(HttpContext context, CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            Interlocked.Add(ref _bodyBytesReceived, read);
            body.Write(buffer, 0, read);
        }

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in context.Request.Headers)
        {
            headers[name] = string.Join(", ", values.ToArray());
        }

        RecordedRequest recorded;
        lock (_requests)
        {
            recorded = new RecordedRequest(
                _requests.Count,
                context.Request.Method,
                context.Request.Path.Value ?? "/",
                context.Request.QueryString.Value ?? "",
                headers,
                body.ToArray(),
                DateTimeOffset.UtcNow);
            _requests.Add(recorded);
            Volatile.Write(ref _callCount, _requests.Count);
        }

        Signal();
        return recorded;
    }

    private static bool IsServerDropped(HttpContext context) => context.Items.ContainsKey(ServerDroppedKey);

    private void Signal() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

    private async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, Func<string> describe)
    {
        using var timer = new CancellationTokenSource(timeout);
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (condition())
            {
                return;
            }

            try
            {
                await changed.WaitAsync(timer.Token);
            }
            catch (OperationCanceledException) when (timer.IsCancellationRequested)
            {
                if (condition())
                {
                    return;
                }

                throw new TimeoutException($"FakeProvider: timed out after {timeout}: {describe()}.");
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static TaskCompletionSource CompletedGate()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }
}

/// <summary>A request's line and headers as the <see cref="FakeProvider"/> saw them on arrival.</summary>
/// <param name="Path">The path as Kestrel decoded and normalized it.</param>
/// <param name="RawTarget">The request-target exactly as sent on the request line (still percent-encoded, dot segments intact).</param>
public sealed record ArrivedRequest(string Method, string Path, string RawTarget, IReadOnlyDictionary<string, string> Headers)
{
    internal static ArrivedRequest From(HttpContext context)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in context.Request.Headers) headers[name] = string.Join(", ", values.ToArray());
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (context.Request.Path.Value + context.Request.QueryString.Value);
        return new ArrivedRequest(context.Request.Method, context.Request.Path.Value ?? "/", raw, headers);
    }
}
