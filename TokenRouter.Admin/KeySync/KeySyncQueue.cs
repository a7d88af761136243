using System.Collections.Concurrent;

namespace TokenRouter.Admin.KeySync;

/// <summary>What has to be rewritten to Redis as a whole (Postgres is the truth for all three).</summary>
[Flags]
public enum RedisResync
{
    None = 0,
    /// <summary>Every key snapshot (and removal of inactive ones).</summary>
    Keys = 1,
    /// <summary>The price overrides hash.</summary>
    Prices = 2,
    /// <summary>Quota spend of keys whose Redis quota hash lost it, from the ledger.</summary>
    QuotaSpend = 4,
    All = Keys | Prices | QuotaSpend,
}

/// <summary>
/// Redis writes that could not be made (Redis down) and still need to be: single keys, or whole resyncs after start-up
/// or a reconnect found Redis unreachable or emptied. Postgres stays the truth; <see cref="KeySyncWorker"/> retries
/// these in the background until Redis takes them.
/// </summary>
public sealed class KeySyncQueue
{
    private readonly ConcurrentDictionary<Guid, byte> _pending = new();
    private readonly SemaphoreSlim _signal = new(0);
    private int _resync;

    public bool IsEmpty => Volatile.Read(ref _resync) == 0 && _pending.IsEmpty;

    public void Enqueue(Guid keyId)
    {
        _pending.TryAdd(keyId, 0);
        _signal.Release();
    }

    /// <summary>Asks for every key to be republished (start-up found Redis unreachable).</summary>
    public void EnqueueFullResync() => EnqueueResync(RedisResync.Keys);

    public void EnqueueResync(RedisResync what)
    {
        if (what == RedisResync.None)
        {
            return;
        }
        Interlocked.Or(ref _resync, (int)what);
        _signal.Release();
    }

    public Task WaitAsync(CancellationToken cancellationToken) => _signal.WaitAsync(cancellationToken);

    /// <summary>Takes what is pending; a failed attempt hands back what it could not do with <see cref="Requeue"/>.</summary>
    public (RedisResync Resync, IReadOnlyList<Guid> KeyIds) TakeAll()
    {
        var resync = (RedisResync)Interlocked.Exchange(ref _resync, 0);
        var ids = new List<Guid>(_pending.Count);
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out _))
            {
                ids.Add(id);
            }
        }
        return (resync, ids);
    }

    public void Requeue(RedisResync resync, IEnumerable<Guid> keyIds)
    {
        Interlocked.Or(ref _resync, (int)resync);
        foreach (var id in keyIds)
        {
            _pending.TryAdd(id, 0);
        }
    }
}
