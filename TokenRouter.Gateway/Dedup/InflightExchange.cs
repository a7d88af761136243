using System.Buffers;
using System.Threading.Tasks.Sources;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// One upstream call and everyone listening to it. The call's producer (the leader's upstream pump, or a feed
/// from another replica) writes the provider's response head and raw body bytes here; each listening client —
/// the leader's own included — reads them from the start at its own pace and translates them into its own API
/// format. The upstream call is cancelled only when the last listener leaves.
/// </summary>
public sealed class InflightExchange
{
    private const int FirstPageBytes = 4 * 1024;
    private const int MaxPageBytes = 64 * 1024;
    /// <summary>A read gets at least this much room: a page with less left is closed and a new one started.</summary>
    private const int MinReadBytes = 512;

    private readonly Lock _lock = new();
    private ChunkList _chunks;
    /// <summary>The body lives in rented pages that chunks point into (a stream's chunks are read straight into them,
    /// not copied into an array each): back to the pool once the exchange is over and its last listener gone.</summary>
    private byte[]? _page;
    private List<byte[]>? _fullPages;
    /// <summary>Bytes of <see cref="_page"/> already holding chunks.</summary>
    private int _pageUsed;
    /// <summary>The clients waiting for news, each woken only once what it waits for is there.</summary>
    private Waiter? _waiters;
    private int _listeners;
    private bool _headKnown;
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

    public int ChunkCount
    {
        get { lock (_lock) return _chunks.Count; }
    }

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
        Pages? unused;
        lock (_lock)
        {
            _listeners--;
            cancel = _listeners == 0 && !_completed;
            unused = TakeUnusedLocked();
        }
        if (cancel) Upstream.Cancel();
        ReturnPages(unused);
    }

    /// <summary>Under the lock: the body's pages once nobody can read them any more — the exchange is over (no one joins a
    /// completed exchange) and its last listener has left. Returned to the pool outside the lock with <see cref="ReturnPages"/>.</summary>
    private Pages? TakeUnusedLocked()
    {
        if (_listeners > 0 || !_completed || _page is null) return null;
        var unused = new Pages(_page, _fullPages);
        _page = null;
        _fullPages = null;
        _pageUsed = 0;
        _chunks.Clear(); // nothing may point into an array the pool hands out again
        return unused;
    }

    private static void ReturnPages(Pages? pages)
    {
        if (pages is not { } p) return;
        ArrayPool<byte>.Shared.Return(p.Last);
        if (p.Full is null) return;
        foreach (var page in p.Full) ArrayPool<byte>.Shared.Return(page);
    }

    private readonly record struct Pages(byte[] Last, List<byte[]>? Full);

    /// <summary>The body's chunks (slices of its pages). A whole body is one chunk, kept inline (a list and its array cost each
    /// JSON request 72 bytes); a stream has one per read, as many as its provider makes.</summary>
    private struct ChunkList
    {
        private ReadOnlyMemory<byte> _first;
        private List<ReadOnlyMemory<byte>>? _rest;

        public int Count { get; private set; }

        public readonly ReadOnlyMemory<byte> this[int index]
        {
            get
            {
                ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
                return index == 0 ? _first : _rest![index - 1];
            }
        }

        public void Add(ReadOnlyMemory<byte> chunk)
        {
            if (Count == 0) _first = chunk;
            else (_rest ??= new List<ReadOnlyMemory<byte>>(4)).Add(chunk);
            Count++;
        }

        public void Clear()
        {
            _first = default;
            _rest?.Clear();
            Count = 0;
        }
    }

    public void SetHead(int status, string? contentType)
    {
        Status = status;
        ContentType = contentType;
        Mirror?.Head(status, contentType);
        Waiter? ready;
        lock (_lock)
        {
            _headKnown = true;
            ready = TakeReady();
        }
        Waiter.Wake(ready);
    }

    /// <summary>Adds a copy of <paramref name="bytes"/> to the body (a feed from another replica).</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            var room = GetAppendBuffer().Span;
            var n = Math.Min(room.Length, bytes.Length);
            bytes[..n].CopyTo(room);
            Commit(n);
            bytes = bytes[n..];
        }
    }

    /// <summary>The producer's room for its next read, at the end of the body's last page: the bytes read there become a
    /// chunk with <see cref="Commit"/>. Listeners never see past what was committed, so the producer writes it unlocked.</summary>
    public Memory<byte> GetAppendBuffer()
    {
        lock (_lock)
        {
            if (_page is null)
            {
                _page = ArrayPool<byte>.Shared.Rent(FirstPageBytes);
                _pageUsed = 0;
            }
            else if (_page.Length - _pageUsed < MinReadBytes)
            {
                // Chunks keep pointing into the full page; it goes back to the pool with the rest.
                (_fullPages ??= []).Add(_page);
                _page = ArrayPool<byte>.Shared.Rent(Math.Min(MaxPageBytes, _page.Length * 2));
                _pageUsed = 0;
            }
            return _page.AsMemory(_pageUsed);
        }
    }

    /// <summary>Publishes the <paramref name="count"/> bytes the producer wrote into <see cref="GetAppendBuffer"/>'s room as
    /// the next chunk.</summary>
    public void Commit(int count)
    {
        if (count <= 0) return;
        Waiter? ready;
        ReadOnlyMemory<byte> chunk;
        lock (_lock)
        {
            chunk = _page.AsMemory(_pageUsed, count);
            _pageUsed += count;
            _chunks.Add(chunk);
            _bytes += count;
            ready = TakeReady();
        }
        Mirror?.Chunk(chunk.Span);
        Waiter.Wake(ready);
    }

    /// <summary>
    /// A whole (non-stream) response at once: head, body and completion, in that order for the <see cref="Mirror"/>,
    /// and published to local listeners together, so that each waiting client wakes once instead of once per part.
    /// Takes over <paramref name="body"/>'s rented array instead of copying it (~0.7 KB a request less in the load
    /// benchmark); the array goes back to the pool when the last listener leaves.
    /// </summary>
    public void Respond(int status, string? contentType, PooledBufferWriter body, Usage usage)
    {
        Status = status;
        ContentType = contentType;
        Usage = usage;
        var owned = body.WrittenCount > 0 ? body.Detach() : default;
        Waiter? ready;
        Pages? unused;
        lock (_lock)
        {
            _headKnown = true;
            if (owned.Count > 0)
            {
                if (_page is not null) (_fullPages ??= []).Add(_page);
                _page = owned.Array;
                _pageUsed = owned.Count;
                _chunks.Add(owned);
                _bytes += owned.Count;
            }
            _completed = true;
            ready = TakeReady();
            unused = TakeUnusedLocked();
        }
        // The mirror is told once the exchange holds the body (it may read it back from there), before the body can go
        // back to the pool.
        if (Mirror is { } mirror)
        {
            mirror.Head(status, contentType);
            if (owned.Count > 0) mirror.Chunk(owned);
            mirror.Complete(usage);
        }
        Waiter.Wake(ready);
        ReturnPages(unused);
    }

    public void Complete(Usage usage)
    {
        Usage = usage;
        Finish();
        // After the exchange is over, as for a whole response: the mirror may settle at once and let go of the exchange.
        Mirror?.Complete(usage);
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
        Finish();
        Mirror?.Fail(error, usage);
    }

    private void Finish()
    {
        Waiter? ready;
        Pages? unused;
        lock (_lock)
        {
            // A failure before any head ends the wait for it too.
            _headKnown = true;
            _completed = true;
            ready = TakeReady();
            // Everyone may have left already (the call was cancelled for that).
            unused = TakeUnusedLocked();
        }
        Waiter.Wake(ready);
        ReturnPages(unused);
    }

    /// <summary>Waits until the head is known (or the exchange failed without one).</summary>
    public ValueTask WaitForHeadAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_headKnown) return ValueTask.CompletedTask;
            return new ValueTask(Enqueue(Waiter.ForHead, cancellationToken), 0);
        }
    }

    /// <summary>
    /// Waits until there are chunks past <paramref name="index"/> or the exchange is over, and returns the chunk
    /// count then; the caller reads chunks [index, count) with <see cref="Chunk"/>. Returns <paramref name="index"/>
    /// when the exchange is over and nothing more will come.
    /// </summary>
    public ValueTask<int> WaitForChunksAsync(int index, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_chunks.Count > index || _completed) return new ValueTask<int>(_chunks.Count);
            return new ValueTask<int>(Enqueue(index, cancellationToken), 0);
        }
    }

    /// <summary>Valid while the caller listens (between <see cref="TryListen"/> and <see cref="Leave"/>).</summary>
    public ReadOnlyMemory<byte> Chunk(int index)
    {
        lock (_lock) return _chunks[index];
    }

    /// <summary>Under the lock. A waiter replaces a TaskCompletionSource per signal plus a Task.WaitAsync per wait (a
    /// promise, a completion action and a thread-pool hop through it): one object per wait, woken straight onto the pool.</summary>
    private Waiter Enqueue(int index, CancellationToken cancellationToken)
    {
        var waiter = new Waiter(index, cancellationToken);
        waiter.Next = _waiters;
        _waiters = waiter;
        // Registered under the lock so that no publication can wake it before its registration is stored; an already
        // cancelled token runs the callback here, which takes no lock.
        waiter.Register();
        return waiter;
    }

    /// <summary>Under the lock: unlinks the waiters whose wait is over (chunk count set for each) and returns them.</summary>
    private Waiter? TakeReady()
    {
        Waiter? ready = null;
        ref var link = ref _waiters;
        while (link is { } waiter)
        {
            var over = waiter.Index == Waiter.ForHead ? _headKnown : _chunks.Count > waiter.Index || _completed;
            if (!over)
            {
                link = ref waiter.Next;
                continue;
            }
            link = waiter.Next;
            waiter.Count = _chunks.Count;
            waiter.Next = ready;
            ready = waiter;
        }
        return ready;
    }

    /// <summary>
    /// One client's wait. Its continuation always runs on the thread pool, never inline on the producer's thread: a
    /// slow client must not stall the pump or the other listeners. Cancelled promptly by the client's token; a
    /// cancelled waiter stays linked until the next publication, which drops it.
    /// </summary>
    private sealed class Waiter(int index, CancellationToken cancellationToken) : IValueTaskSource<int>, IValueTaskSource
    {
        public const int ForHead = -1;

        private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };
        private CancellationTokenRegistration _registration;
        private int _settled;

        /// <summary>The chunk index waited past, or <see cref="ForHead"/>.</summary>
        public int Index { get; } = index;
        public int Count;
        public Waiter? Next;

        public void Register()
        {
            if (cancellationToken.CanBeCanceled)
                _registration = cancellationToken.UnsafeRegister(static s => ((Waiter)s!).Cancel(), this);
        }

        public static void Wake(Waiter? ready)
        {
            while (ready is not null)
            {
                var next = ready.Next;
                ready.Next = null;
                if (Interlocked.Exchange(ref ready._settled, 1) == 0) ready._core.SetResult(ready.Count);
                ready = next;
            }
        }

        private void Cancel()
        {
            if (Interlocked.Exchange(ref _settled, 1) == 0) _core.SetException(new OperationCanceledException(cancellationToken));
        }

        public int GetResult(short token)
        {
            // Unregister, not Dispose: it need not wait for a cancellation callback in progress, which can do no harm now.
            _registration.Unregister();
            return _core.GetResult(token);
        }

        void IValueTaskSource.GetResult(short token) => GetResult(token);
        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
