using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// One upstream call and everyone listening to it. The call's producer (the leader's upstream pump, or a feed
/// from another replica) writes the provider's response head and raw body bytes here; each listening client —
/// the leader's own included — reads them from the start at its own pace and translates them into its own API
/// format. The upstream call is cancelled only when the last listener leaves.
/// </summary>
public sealed class InflightExchange
{
    private readonly Lock _lock = new();
    private readonly List<byte[]> _chunks = [];
    private TaskCompletionSource _changed = NewSignal();
    private readonly TaskCompletionSource _head = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _listeners;
    private bool _completed;
    private long _bytes;

    public InflightExchange(string key, bool stream, long createdAt)
    {
        Key = key;
        Stream = stream;
        CreatedAt = createdAt;
    }

    public string Key { get; }
    public bool Stream { get; }
    public long CreatedAt { get; }

    /// <summary>Cancels the upstream call; fired when the last listener leaves before the end.</summary>
    public CancellationTokenSource Upstream { get; } = new();

    public int Status { get; private set; }
    /// <summary>The provider's <c>Retry-After</c> on an error status, passed on to every listener.</summary>
    public int? RetryAfterSeconds { get; set; }
    public string? ContentType { get; private set; }
    /// <summary>Set when the call failed: before the head (no response at all) or mid-body (a broken stream).</summary>
    public ApiError? Error { get; private set; }
    /// <summary>The provider's usage for the call, known once it completes.</summary>
    public Usage Usage { get; private set; }
    public bool IsCompleted
    {
        get { lock (_lock) return _completed; }
    }

    public int Listeners => Volatile.Read(ref _listeners);

    /// <summary>Other replicas' view of this exchange, when this replica leads it across replicas.</summary>
    public IExchangeMirror? Mirror { get; set; }

    /// <summary>True once this process's own upstream call produces the exchange (not a feed from another replica).</summary>
    public bool ProducedLocally { get; set; }
    public long BodyBytes => Interlocked.Read(ref _bytes);

    /// <summary>Adds a listener; false once the exchange is over (a late joiner must start its own call).</summary>
    public bool TryListen()
    {
        lock (_lock)
        {
            if (_completed || Upstream.IsCancellationRequested) return false;
            _listeners++;
            return true;
        }
    }

    /// <summary>A listener left. The last one to leave before the end cancels the upstream call.</summary>
    public void Leave()
    {
        bool cancel;
        lock (_lock)
        {
            _listeners--;
            cancel = _listeners == 0 && !_completed;
        }
        if (cancel) Upstream.Cancel();
    }

    public void SetHead(int status, string? contentType)
    {
        Status = status;
        ContentType = contentType;
        Mirror?.Head(status, contentType);
        _head.TrySetResult();
    }

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return;
        Mirror?.Chunk(bytes);
        var copy = bytes.ToArray();
        TaskCompletionSource signal;
        lock (_lock)
        {
            _chunks.Add(copy);
            _bytes += copy.Length;
            signal = _changed;
            _changed = NewSignal();
        }
        signal.TrySetResult();
    }

    public void Complete(Usage usage)
    {
        Usage = usage;
        Mirror?.Complete(usage);
        Finish();
    }

    /// <summary>True when the exchange ended before any upstream call because its leader was refused (its own limits or
    /// quota) or left: followers start over rather than take that answer as theirs.</summary>
    public bool LeaderRejected { get; private set; }

    public void Reject(ApiError error)
    {
        LeaderRejected = true;
        Fail(error);
    }

    public void Fail(ApiError error, Usage usage = default)
    {
        Error = error;
        Usage = usage;
        Mirror?.Fail(error, usage);
        _head.TrySetResult();
        Finish();
    }

    private void Finish()
    {
        TaskCompletionSource signal;
        lock (_lock)
        {
            _completed = true;
            signal = _changed;
        }
        signal.TrySetResult();
    }

    public Task WaitForHeadAsync(CancellationToken cancellationToken) => _head.Task.WaitAsync(cancellationToken);

    /// <summary>
    /// Waits until there are chunks past <paramref name="index"/> or the exchange is over, and returns the chunk
    /// count then; the caller reads chunks [index, count) with <see cref="Chunk"/>. Returns <paramref name="index"/>
    /// when the exchange is over and nothing more will come.
    /// </summary>
    public async ValueTask<int> WaitForChunksAsync(int index, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_chunks.Count > index || _completed) return _chunks.Count;
                wait = _changed.Task;
            }
            await wait.WaitAsync(cancellationToken);
        }
    }

    public byte[] Chunk(int index)
    {
        lock (_lock) return _chunks[index];
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
