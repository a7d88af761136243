using System.Diagnostics.Metrics;
using StackExchange.Redis;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Ledger;

/// <summary>The stream's backlog as Redis reported it: entries not yet delivered to the group, and delivered but unacknowledged.</summary>
public sealed record LedgerBacklog(long? StreamLength, long? Undelivered, long? Pending, DateTimeOffset ObservedAt)
{
    /// <summary>Entries the ledger does not hold yet (null when Redis could not say).</summary>
    public long? Total => Undelivered is { } u && Pending is { } p ? u + p : null;
}

/// <summary>
/// What the ledger consumer has done and how far behind it is, for the <c>/admin/ledger</c> endpoint and the
/// <c>tokenrouter.ledger.*</c> metrics. Metric callbacks must not call Redis, so they read the last observation,
/// which the consumer refreshes every <see cref="UsageLedgerOptions.StatusInterval"/>.
/// </summary>
public sealed class UsageLedgerStatus
{
    public const string MeterName = "TokenRouter.Admin";

    private readonly IConnectionMultiplexer _redis;
    private readonly Counter<long> _entries;
    private LedgerBacklog? _last;
    private long _stored, _duplicates, _deadLettered;

    public UsageLedgerStatus(IConnectionMultiplexer redis, IMeterFactory meterFactory)
    {
        _redis = redis;
        var meter = meterFactory.Create(MeterName);
        _entries = meter.CreateCounter<long>("tokenrouter.ledger.entries", "{entry}",
            "Usage stream entries processed by the ledger, by outcome (stored, duplicate, dead_letter).");
        meter.CreateObservableGauge("tokenrouter.ledger.backlog", () => Observe(b => b.Total), "{entry}",
            "Usage entries not yet in the ledger: undelivered to the consumer group plus pending acknowledgement.");
        meter.CreateObservableGauge("tokenrouter.ledger.lag", () => Observe(b => b.Undelivered), "{entry}",
            "Usage entries not yet delivered to the consumer group.");
        meter.CreateObservableGauge("tokenrouter.ledger.pending", () => Observe(b => b.Pending), "{entry}",
            "Usage entries delivered to a consumer but not yet acknowledged.");
    }

    public LedgerBacklog? LastBacklog => Volatile.Read(ref _last);
    public long Stored => Interlocked.Read(ref _stored);
    public long Duplicates => Interlocked.Read(ref _duplicates);
    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    public void RecordBatch(int stored, int duplicates, int deadLettered)
    {
        Add(ref _stored, stored, "stored");
        Add(ref _duplicates, duplicates, "duplicate");
        Add(ref _deadLettered, deadLettered, "dead_letter");
    }

    /// <summary>Reads the group's lag and pending count (XINFO GROUPS, XLEN) and remembers them for the metrics.</summary>
    public async Task<LedgerBacklog> RefreshAsync(DateTimeOffset now)
    {
        var db = _redis.GetDatabase();
        var key = (RedisKey)RedisContract.UsageStream;
        if (!await db.KeyExistsAsync(key))
        {
            return Remember(new LedgerBacklog(0, 0, 0, now));
        }

        var lengthTask = db.StreamLengthAsync(key);
        var groupsTask = db.StreamGroupInfoAsync(key);
        var length = await lengthTask;
        var group = (await groupsTask).FirstOrDefault(g => g.Name == RedisContract.UsageConsumerGroup);
        if (group.Name is null)
        {
            return Remember(new LedgerBacklog(length, length, 0, now)); // no group yet: everything is undelivered
        }

        // Redis cannot always compute the lag (e.g. after XDEL inside the range). Acknowledged entries are trimmed,
        // so what is in the stream and not pending is, to within one batch, what is undelivered.
        var undelivered = group.Lag ?? Math.Max(0, length - group.PendingMessageCount);
        return Remember(new LedgerBacklog(length, undelivered, group.PendingMessageCount, now));
    }

    private LedgerBacklog Remember(LedgerBacklog backlog)
    {
        Volatile.Write(ref _last, backlog);
        return backlog;
    }

    private IEnumerable<Measurement<long>> Observe(Func<LedgerBacklog, long?> select) =>
        LastBacklog is { } backlog && select(backlog) is { } value ? [new Measurement<long>(value)] : [];

    private void Add(ref long total, int count, string outcome)
    {
        if (count > 0)
        {
            Interlocked.Add(ref total, count);
            _entries.Add(count, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }
}
