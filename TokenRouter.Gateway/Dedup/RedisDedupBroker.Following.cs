using System.Globalization;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Dedup;

/// <summary>The follower's side: relaying another replica's response from its stream, or taking over when it died.</summary>
public sealed partial class RedisDedupBroker
{
    public async Task<bool> FollowAsync(string key, InflightExchange exchange, Func<Task> ownCall, CancellationToken cancellationToken)
    {
        _observed.TryRemove(key, out var claim);
        string? dead = null;
        for (var generation = 0; ; generation++)
        {
            if (claim is null && cancellationToken.IsCancellationRequested)
            {
                // Every client here left while the leader went away: no call for nobody.
                exchange.Fail(new ApiError(499, "api_error", "Every client left."));
                return false;
            }
            if (claim is null)
            {
                // Nobody leads (the leader died, or finished before we looked): lead ourselves, or follow whoever was first.
                var mine = NewId();
                string? owner;
                try
                {
                    owner = dead is null ? await ClaimAsync(key, mine) : await TakeOverAsync(key, dead, mine);
                }
                catch (Exception ex) when (IsRedisFailure(ex))
                {
                    NoteOwnCall(key, "Redis is unreachable");
                    await ownCall();
                    return true;
                }
                if (owner is null || generation >= MaxGenerations)
                {
                    // Taking over means others followed the dead leader too: they will look for this claim's stream.
                    if (owner is null) exchange.Mirror = StartPublishing(exchange, mine, mirrorNow: true);
                    NoteOwnCall(key, owner is null ? "the leading replica is gone" : "leaders keep failing");
                    await ownCall();
                    return true;
                }
                claim = owner;
            }

            var outcome = await RelayAsync(key, claim, exchange, cancellationToken);
            switch (outcome)
            {
                case FollowOutcome.Relayed:
                    return false;
                case FollowOutcome.Cancelled:
                    // Every client here left; nothing to relay to.
                    if (!exchange.IsCompleted) exchange.Fail(new ApiError(499, "api_error", "Every client left."));
                    return false;
                case FollowOutcome.Stopping:
                    if (!exchange.IsCompleted) exchange.Fail(ApiError.BadGateway("The gateway is shutting down."));
                    return false;
                case FollowOutcome.LeaderGoneMidResponse:
                    LogLeaderLost(key);
                    exchange.Fail(ApiError.BadGateway("The replica leading this request stopped answering."));
                    return false;
                case FollowOutcome.Unreachable:
                    NoteOwnCall(key, "Redis is unreachable");
                    await ownCall();
                    return true;
                default: // LeaderGone before any byte: take over
                    dead = claim;
                    claim = null;
                    break;
            }
        }
    }

    private enum FollowOutcome { Relayed, Cancelled, Stopping, LeaderGone, LeaderGoneMidResponse, Unreachable }

    private async Task<FollowOutcome> RelayAsync(string key, string claim, InflightExchange exchange, CancellationToken cancellationToken)
    {
        var events = (RedisKey)RedisContract.DedupEventsKey(key, claim);
        var owner = (RedisKey)RedisContract.DedupOwnerKey(key);
        var registration = new FollowerRegistration(RedisContract.DedupFollowersKey(key, claim), NewId(), owner, claim,
            RedisContract.DedupLeaderChannel(claim));
        _followers[registration] = 0;
        var db = Db;
        var head = false;
        // Woken by the leader's message after each write; polling with back-off only covers a lost message.
        var wake = new WakeSignal();
        var channel = RedisChannel.Literal(RedisContract.DedupWakeChannel(key, claim));
        Action<RedisChannel, RedisValue> onWake = (_, _) => wake.Set();
        var subscriber = _redis.GetSubscriber();
        var subscribed = false;
        var ownerGone = false;
        try
        {
            try
            {
                await subscriber.SubscribeAsync(channel, onWake);
                subscribed = true;
                // A claim already gone ended before it saw us, unfollowed (so it wrote nothing), or died: one read of its
                // stream tells which, without waiting LeaderWait for news that will not come.
                ownerGone = !await RenewFollowerAsync(registration);
            }
            catch (Exception ex) when (IsRedisFailure(ex))
            {
                // Reading below notices if Redis is really gone.
            }
            RedisValue position = "0-0";
            long expected = 1;
            var lastNews = _time.GetTimestamp();
            var lastContact = lastNews;
            var nextOwnerCheck = 0L;
            var delay = MinPoll;
            while (true)
            {
                if (cancellationToken.IsCancellationRequested) return FollowOutcome.Cancelled;
                if (_stopping.IsCancellationRequested) return FollowOutcome.Stopping;

                var woken = wake.Next;
                StreamEntry[]? entries = null;
                try
                {
                    entries = await db.StreamReadAsync(events, position, ReadBatch);
                    lastContact = _time.GetTimestamp();
                }
                catch (Exception ex) when (IsRedisFailure(ex))
                {
                    // Counted as silence; persistent failure ends below as Unreachable.
                }

                if (entries is { Length: > 0 })
                {
                    foreach (var entry in entries)
                    {
                        var seq = Sequence(entry.Id);
                        if (seq < expected) continue;
                        if (seq > expected) return head ? FollowOutcome.LeaderGoneMidResponse : FollowOutcome.LeaderGone; // a lost write
                        expected++;
                        position = entry.Id;
                        switch ((string?)entry[RedisContract.DedupFields.Type])
                        {
                            case RedisContract.DedupEntryTypes.Head:
                                head = true;
                                exchange.SetHead(ReadInt(entry, RedisContract.DedupFields.Status), NullIfEmpty(entry[RedisContract.DedupFields.ContentType]));
                                break;
                            case RedisContract.DedupEntryTypes.Chunk:
                                exchange.Append(((ReadOnlyMemory<byte>)entry[RedisContract.DedupFields.Data]).Span);
                                break;
                            case RedisContract.DedupEntryTypes.End:
                                exchange.Complete(ReadUsage(entry));
                                return FollowOutcome.Relayed;
                            case RedisContract.DedupEntryTypes.Fail:
                                var status = ReadInt(entry, RedisContract.DedupFields.Status);
                                // 499: the leader's own clients all left and it gave up before seeing us; not the provider's answer.
                                if (status == 499) return head ? FollowOutcome.LeaderGoneMidResponse : FollowOutcome.LeaderGone;
                                exchange.Fail(ReadError(entry, status), ReadUsage(entry));
                                return FollowOutcome.Relayed;
                            default: // gone, or a type this version does not know
                                return head ? FollowOutcome.LeaderGoneMidResponse : FollowOutcome.LeaderGone;
                        }
                    }
                    lastNews = _time.GetTimestamp();
                    ownerGone = false;
                    delay = MinPoll;
                    continue;
                }

                // The leader deletes its claim in the same script that writes its last entry, so one more read after
                // seeing the claim gone is enough to tell "finished" from "died".
                if (ownerGone) return head ? FollowOutcome.LeaderGoneMidResponse : FollowOutcome.LeaderGone;

                var now = _time.GetTimestamp();
                if (_time.GetElapsedTime(lastNews, now) >= _options.LeaderWait)
                {
                    if (_time.GetElapsedTime(lastContact, now) >= _options.LeaderWait)
                        return head ? FollowOutcome.LeaderGoneMidResponse : FollowOutcome.Unreachable;
                    if (now >= nextOwnerCheck)
                    {
                        nextOwnerCheck = now + (long)(Math.Min(_options.LeaderWait.TotalSeconds, MaxOwnerCheckInterval.TotalSeconds) * _time.TimestampFrequency);
                        try
                        {
                            var current = await db.StringGetAsync(owner);
                            lastContact = _time.GetTimestamp();
                            if (current != claim)
                            {
                                ownerGone = true;
                                continue;
                            }
                        }
                        catch (Exception ex) when (IsRedisFailure(ex))
                        {
                        }
                    }
                }

                if (await Task.WhenAny(woken, Task.Delay(delay, _time, cancellationToken)) == woken) delay = MinPoll;
                else delay = delay * 2 > _options.MaxPollInterval ? _options.MaxPollInterval : delay * 2;
            }
        }
        finally
        {
            _followers.TryRemove(registration, out _);
            _ = UnregisterAsync(registration, subscribed ? channel : default, onWake);
        }
    }

    private async Task UnregisterAsync(FollowerRegistration registration, RedisChannel channel, Action<RedisChannel, RedisValue> onWake)
    {
        try
        {
            if (!channel.IsNullOrEmpty) await _redis.GetSubscriber().UnsubscribeAsync(channel, onWake);
            await Db.SortedSetRemoveAsync(registration.Key, registration.Id);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            // Its deadline runs out on its own; the subscription went with the connection.
        }
    }

    /// <summary>A signal that completes the task handed out before it was set: a wake between "take" and "wait" is not lost.</summary>
    private sealed class WakeSignal
    {
        private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Next => Volatile.Read(ref _next).Task;

        public void Set() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>Registers or renews a follower and tells its leader; false when the claim no longer leads.</summary>
    private async Task<bool> RenewFollowerAsync(FollowerRegistration registration) =>
        (long)await RenewFollowerScript.EvaluateAsync(Db, [registration.Key, registration.Owner],
            [registration.Id, _leaseMs, (long)(_options.Lease + _options.Retention).TotalMilliseconds, registration.Claim, registration.LeaderChannel]) == 1;

    // ---- Reading the stream's entries ---------------------------------------------------------------------

    private static long Sequence(RedisValue id)
    {
        var text = (string?)id;
        var dash = text?.IndexOf('-') ?? -1;
        return dash >= 0 && long.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var seq) ? seq : 0;
    }

    private static int ReadInt(StreamEntry entry, string field) =>
        int.TryParse((string?)entry[field], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : 0;

    private static string? NullIfEmpty(RedisValue value) => value.IsNullOrEmpty ? null : (string?)value;

    private static Usage ReadUsage(StreamEntry entry) => new(
        ReadInt(entry, RedisContract.DedupFields.PromptTokens),
        ReadInt(entry, RedisContract.DedupFields.CachedReadTokens),
        ReadInt(entry, RedisContract.DedupFields.CacheWrite5mTokens),
        ReadInt(entry, RedisContract.DedupFields.CacheWrite1hTokens),
        ReadInt(entry, RedisContract.DedupFields.CompletionTokens));

    private static ApiError ReadError(StreamEntry entry, int status) => new(
        status == 0 ? 502 : status,
        NullIfEmpty(entry[RedisContract.DedupFields.ErrorType]) ?? "api_error",
        NullIfEmpty(entry[RedisContract.DedupFields.Message]) ?? "The provider call failed.",
        NullIfEmpty(entry[RedisContract.DedupFields.Code]),
        NullIfEmpty(entry[RedisContract.DedupFields.Param]));

    private sealed record FollowerRegistration(RedisKey Key, string Id, RedisKey Owner, string Claim, string LeaderChannel);
}
