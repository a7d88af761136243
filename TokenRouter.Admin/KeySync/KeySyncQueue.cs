using System.Collections.Concurrent;

namespace TokenRouter.Admin.KeySync;

/// <summary>
/// Keys whose Redis snapshot could not be written (Redis down) and still need one. Postgres stays the truth;
/// <see cref="KeySyncWorker"/> retries these in the background until Redis takes them.
/// </summary>
public sealed class KeySyncQueue
{
    private readonly ConcurrentDictionary<Guid, byte> _pending = new();
    private readonly SemaphoreSlim _signal = new(0);
    private volatile bool _fullResyncPending;

    public bool IsEmpty => !_fullResyncPending && _pending.IsEmpty;

    public void Enqueue(Guid keyId)
    {
        _pending.TryAdd(keyId, 0);
        _signal.Release();
    }

    /// <summary>Asks for every key to be republished (start-up found Redis unreachable).</summary>
    public void EnqueueFullResync()
    {
        _fullResyncPending = true;
        _signal.Release();
    }

    public Task WaitAsync(CancellationToken cancellationToken) => _signal.WaitAsync(cancellationToken);

    /// <summary>Takes what is pending; a failed attempt hands it back with <see cref="Requeue"/>.</summary>
    public (bool FullResync, IReadOnlyList<Guid> KeyIds) TakeAll()
    {
        var full = _fullResyncPending;
        _fullResyncPending = false;
        var ids = new List<Guid>(_pending.Count);
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out _))
            {
                ids.Add(id);
            }
        }
        return (full, ids);
    }

    public void Requeue(bool fullResync, IEnumerable<Guid> keyIds)
    {
        if (fullResync)
        {
            _fullResyncPending = true;
        }
        foreach (var id in keyIds)
        {
            _pending.TryAdd(id, 0);
        }
    }
}
