using System.Buffers;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Dedup;

/// <summary>
/// The leader's <see cref="IExchangeMirror"/>: queues what the upstream pump writes and appends it to the claim's events
/// stream in order, in the background (the pump never waits for Redis). Consecutive body chunks written while a batch is
/// on its way are merged into one entry. It also listens to the exchange itself (the "hold"), so the upstream call is
/// not cancelled when this replica's clients leave while other replicas still relay it; the broker's sweep releases the
/// hold once no replica follows any more.
/// </summary>
/// <remarks>
/// Nearly every call has no follower on another replica, so the publisher stays quiet until one announces itself
/// (<see cref="StartMirroring"/>): then it writes everything so far and goes on live. A quiet call ends with one
/// settling script that deletes the claim, unless a follower registered meanwhile or is on its way; then the whole
/// response is written instead. Mirroring every response cost a third of Redis's work per request (bench/results/load-redis-before-lazy-mirror.md).
/// </remarks>
internal sealed class RedisExchangePublisher : IExchangeMirror
{
    private const int MaxMergedChunkBytes = 256 * 1024;

    private readonly RedisDedupBroker _broker;
    private readonly Lock _lock = new();
    private List<Entry> _pending = [];
    private bool _flushing;
    private bool _closed;     // the last entry (end, fail or gone) is queued: nothing more is accepted
    private bool _mirroring;  // a follower exists: entries go to Redis as they come
    private bool _abandoned;  // Redis refused our writes: followers notice the silence and the lapsed claim
    private long _written;    // entries sent so far; the next gets id 0-(_written + 1)
    private int _holding;
    // While no follower exists the head and body are not copied (a copy per response, ~5 KB a request, that nearly
    // every call threw away): the hold keeps them readable in the exchange, and they become entries only if a follower
    // appears or the hold ends. _copying: entries are made as the pump writes; _headSeen/_chunksSeen: what it wrote so far.
    private bool _copying;
    private bool _headSeen;
    private int _chunksSeen;
    private bool _retired;
    private string? _events;
    private string? _wakeChannel;

    public RedisExchangePublisher(RedisDedupBroker broker, InflightExchange exchange, string claim)
    {
        _broker = broker;
        Exchange = exchange;
        Claim = claim;
        Owner = RedisContract.DedupOwnerKey(exchange.Key);
        Followers = RedisContract.DedupFollowersKey(exchange.Key, claim);
        Joining = RedisContract.DedupJoiningKey(exchange.Key);
        _holding = exchange.TryListen() ? 1 : 0;
        // Reading the call back from the exchange needs the hold, and an exchange this publisher saw from its start
        // (a call taken over from another replica may already hold what that replica's feed wrote).
        _copying = _holding == 0 || exchange.ChunkCount > 0 || exchange.Status != 0;
    }

    public InflightExchange Exchange { get; }
    public string Claim { get; }
    public RedisKey Owner { get; }
    // Named on first use: only a call that is followed (or runs long enough to be renewed) writes events, and most are
    // settled without (~250 B a request on Redis).
    public RedisKey Events => _events ??= RedisContract.DedupEventsKey(Exchange.Key, Claim);
    public RedisKey Followers { get; }
    public RedisKey Joining { get; }
    public string WakeChannel => _wakeChannel ??= RedisContract.DedupWakeChannel(Exchange.Key, Claim);

    /// <summary>True while the publisher keeps the call alive and no client of this replica listens to it any more.</summary>
    public bool OnlyHoldListens => Volatile.Read(ref _holding) == 1 && Exchange.Listeners <= 1 && !Exchange.IsCompleted;

    /// <summary>True once a follower exists and the response goes to Redis.</summary>
    public bool IsMirroring
    {
        get { lock (_lock) return _mirroring; }
    }

    public bool IsClosed
    {
        get { lock (_lock) return _closed; }
    }

    public void Head(int status, string? contentType)
    {
        lock (_lock)
        {
            if (_closed || _abandoned) return;
            _headSeen = true;
            if (!_copying) return;
            _pending.Add(HeadEntry(status, contentType));
            if (_mirroring) KickLocked();
        }
    }

    /// <summary>Called after the exchange holds <paramref name="bytes"/> as its next chunk (see <see cref="InflightExchange.Commit"/>).</summary>
    public void Chunk(ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            if (_closed || _abandoned) return;
            _chunksSeen++;
            if (!_copying) return;
            AddChunk(_pending, bytes);
            if (_mirroring) KickLocked();
        }
    }

    private static Entry HeadEntry(int status, string? contentType)
    {
        var entry = new Entry(RedisContract.DedupEntryTypes.Head, pairs: 2);
        entry.Add(RedisContract.DedupFields.Status, status);
        if (contentType is not null) entry.Add(RedisContract.DedupFields.ContentType, contentType);
        return entry;
    }

    /// <summary>Appends body bytes to the last chunk entry of <paramref name="entries"/>, or to a new one.</summary>
    private static void AddChunk(List<Entry> entries, ReadOnlySpan<byte> bytes)
    {
        var last = entries.Count > 0 ? entries[^1] : null;
        if (last?.Data is null || last.Data.WrittenCount + bytes.Length > MaxMergedChunkBytes)
        {
            last = new Entry(RedisContract.DedupEntryTypes.Chunk) { Data = new ArrayBufferWriter<byte>(Math.Max(bytes.Length, 4096)) };
            entries.Add(last);
        }
        last.Data.Write(bytes);
    }

    /// <summary>Under the lock: from now on entries are copies made as the pump writes; what it wrote before is read back
    /// from the exchange (which the hold still keeps) into entries placed ahead of any already queued (the closing one).</summary>
    private void StartCopyingLocked()
    {
        if (_copying || _abandoned || _retired) return;
        _copying = true;
        var earlier = new List<Entry>(2);
        if (_headSeen) earlier.Add(HeadEntry(Exchange.Status, Exchange.ContentType));
        for (var i = 0; i < _chunksSeen; i++) AddChunk(earlier, Exchange.Chunk(i).Span);
        _pending.InsertRange(0, earlier);
    }

    public void Complete(Usage usage)
    {
        var entry = new Entry(RedisContract.DedupEntryTypes.End);
        entry.AddUsage(usage);
        Enqueue(entry, last: true);
    }

    public void Fail(ApiError error, Usage usage)
    {
        // A failure while this replica shuts down is its own, not the provider's: followers should take over, not inherit it.
        if (_broker.IsStopping)
        {
            Enqueue(new Entry(RedisContract.DedupEntryTypes.Gone), last: true);
            return;
        }
        var entry = new Entry(RedisContract.DedupEntryTypes.Fail, pairs: 5);
        entry.Add(RedisContract.DedupFields.Status, error.Status);
        entry.Add(RedisContract.DedupFields.ErrorType, error.Type);
        entry.Add(RedisContract.DedupFields.Message, error.Message);
        if (error.Code is not null) entry.Add(RedisContract.DedupFields.Code, error.Code);
        if (error.Param is not null) entry.Add(RedisContract.DedupFields.Param, error.Param);
        entry.AddUsage(usage);
        Enqueue(entry, last: true);
    }

    /// <summary>This replica is going away before its call ended: tell followers to take over, and stop holding the call.</summary>
    public void HandOff()
    {
        Enqueue(new Entry(RedisContract.DedupEntryTypes.Gone), last: true);
        ReleaseHold();
    }

    /// <summary>A follower registered on another replica: write what the call produced so far, and from now on as it comes.</summary>
    public void StartMirroring()
    {
        lock (_lock)
        {
            if (_mirroring || _retired) return;
            StartCopyingLocked();
            _mirroring = true;
            if (_pending.Count > 0) KickLocked();
        }
    }

    /// <summary>Stops keeping the upstream call alive for other replicas (cancels it if no client here listens either).</summary>
    public void ReleaseHold()
    {
        // Without the hold the exchange may give its body back: what a follower may still need is copied first.
        lock (_lock) StartCopyingLocked();
        LetGo();
    }

    private void LetGo()
    {
        if (Interlocked.Exchange(ref _holding, 0) == 1) Exchange.Leave();
    }

    private void Enqueue(Entry entry, bool last)
    {
        var settleHere = false;
        lock (_lock)
        {
            if (_closed || _abandoned) return;
            _pending.Add(entry);
            _closed = last;
            if (last && !_mirroring && !_flushing) settleHere = _flushing = true;
            else if (_mirroring || last) KickLocked();
        }
        // A quiet call's settle is one script call: started on the caller's thread, it saves every request a thread-pool
        // hand-off. Mirrored writes stay on the pool, off the upstream read.
        if (settleHere) _ = FlushAsync();
    }

    private void KickLocked()
    {
        if (_flushing || _abandoned) return;
        _flushing = true;
        ThreadPool.UnsafeQueueUserWorkItem(static p => _ = p.FlushAsync(), this, preferLocal: false);
    }

    /// <summary>One writer per publisher, so batches land in order; each batch is one script call.</summary>
    private async Task FlushAsync()
    {
        while (true)
        {
            List<Entry> batch;
            bool final, quiet;
            lock (_lock)
            {
                if (_pending.Count == 0 || _abandoned)
                {
                    _flushing = false;
                    return;
                }
                batch = _pending;
                _pending = [];
                final = _closed; // the closing entry is queued last, so it is in this batch
                quiet = !_mirroring; // only the closing entry kicks a quiet publisher: this batch is the whole response
            }

            if (quiet)
            {
                bool? followed = await _broker.SettleAsync(this);
                if (followed is null)
                {
                    Abandon();
                    return;
                }
                if (followed == false)
                {
                    Retire();
                    lock (_lock) _flushing = false;
                    return;
                }
                lock (_lock)
                {
                    // A follower registered meanwhile: the whole response goes to Redis after all, read back from the
                    // exchange. A follower's announcement or the hold's end during the settle may have read it back
                    // already: those entries wait in _pending (nothing else can, the call being closed) and belong
                    // ahead of the closing entry in this batch.
                    StartCopyingLocked();
                    _pending.AddRange(batch);
                    batch = _pending;
                    _pending = [];
                    _mirroring = true;
                }
            }

            var firstId = _written + 1;
            _written += batch.Count;
            if (!await _broker.AppendAsync(this, batch, firstId, final))
            {
                Abandon();
                return;
            }
            if (final)
            {
                Retire();
                lock (_lock) _flushing = false;
                return;
            }
        }
    }

    /// <summary>The call's whole response is settled or written: nothing more is read from the exchange, so the hold is
    /// let go and the exchange can give its body back to the pool once its clients are served (held until the exchange
    /// was collected, every response body in Redis mode was an array the pool lost). The closing entry is queued before the
    /// exchange marks itself over; in the unlikely case that it has not yet, the hold stays, as a leave before the end
    /// would cancel the call.</summary>
    private void Retire()
    {
        lock (_lock) _retired = true;
        _broker.Retire(this);
        if (Exchange.IsCompleted) LetGo();
    }

    private void Abandon()
    {
        lock (_lock)
        {
            _abandoned = true;
            _flushing = false;
            _pending.Clear();
        }
        _broker.Retire(this);
        LetGo();
    }

    /// <summary>One stream entry: its field/value pairs, and for a body chunk the bytes merged so far.</summary>
    /// <remarks>The usage is kept as it is and spelled out as fields only when the entry is written: a quiet call's closing
    /// entry is made on every request on Redis and written for almost none.</remarks>
    internal sealed class Entry
    {
        private const int UsagePairs = 5;

        private readonly string _type;
        private List<RedisValue>? _fields;
        private Usage _usage;
        private bool _hasUsage;

        /// <param name="pairs">The field/value pairs <see cref="Add"/> will add, so that the list is sized once.</param>
        public Entry(string type, int pairs = 0)
        {
            _type = type;
            if (pairs > 0) _fields = new List<RedisValue>(2 * pairs);
        }

        public ArrayBufferWriter<byte>? Data { get; init; }

        public void Add(string field, RedisValue value)
        {
            _fields ??= new List<RedisValue>(2);
            _fields.Add(field);
            _fields.Add(value);
        }

        public void AddUsage(in Usage usage) => (_usage, _hasUsage) = (usage, true);

        /// <summary>Appends "count, field, value, …" to a script's arguments: the type, the added pairs, the usage, the data.</summary>
        public void WriteTo(List<RedisValue> args)
        {
            args.Add(2 + (_fields?.Count ?? 0) + (_hasUsage ? 2 * UsagePairs : 0) + (Data is null ? 0 : 2));
            args.Add(RedisContract.DedupFields.Type);
            args.Add(_type);
            if (_fields is not null) args.AddRange(_fields);
            if (_hasUsage)
            {
                args.Add(RedisContract.DedupFields.PromptTokens);
                args.Add(_usage.PromptTokens);
                args.Add(RedisContract.DedupFields.CachedReadTokens);
                args.Add(_usage.CachedReadTokens);
                args.Add(RedisContract.DedupFields.CacheWrite5mTokens);
                args.Add(_usage.CacheWrite5mTokens);
                args.Add(RedisContract.DedupFields.CacheWrite1hTokens);
                args.Add(_usage.CacheWrite1hTokens);
                args.Add(RedisContract.DedupFields.CompletionTokens);
                args.Add(_usage.CompletionTokens);
            }
            if (Data is not null)
            {
                args.Add(RedisContract.DedupFields.Data);
                args.Add(Data.WrittenMemory);
            }
        }
    }
}
