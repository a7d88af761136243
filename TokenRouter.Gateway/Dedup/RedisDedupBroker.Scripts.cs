using TokenRouter.Gateway.Redis;

namespace TokenRouter.Gateway.Dedup;

/// <summary>The broker's Lua scripts: each step that must read and write Redis atomically (keys: RedisContract, "Dedup across replicas").</summary>
public sealed partial class RedisDedupBroker
{
    // KEYS: owner, joining. ARGV: claim, lease ms. Returns nil when claimed, else the current owner's claim, and then marks
    // a follower on its way (see SettleScript). Most claims find no owner, so SET NX first: one call instead of two.
    private static readonly RedisScript ClaimScript = new("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
        redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
        return redis.call('GET', KEYS[1])
        """);

    // KEYS: owner. ARGV: the claim to replace, the new claim, lease ms. 1 when the old claim still led and was replaced.
    private static readonly RedisScript ReplaceClaimScript = new("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
        """);

    // KEYS: owner, followers, joining. ARGV: claim. The end of a call nobody followed so far: 1 when a follower is
    // registered or on its way (the leader then writes the whole response), else deletes the claim and returns 0. Nearly
    // every call ends with neither key there: one EXISTS of both says so, sparing Redis the clock and the count.
    private static readonly RedisScript SettleScript = new("""
        if redis.call('EXISTS', KEYS[3], KEYS[2]) > 0 then
          if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
          local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          if redis.call('ZCOUNT', KEYS[2], now, '+inf') > 0 then return 1 end
        end
        if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
        return 0
        """);

    // KEYS: owner, successor of the dead claim. ARGV: claim, lease ms, retention ms. Like ClaimScript, but a replica that
    // already took over from the same dead leader wins even if its call has ended since: its stream is still there.
    private static readonly RedisScript TakeOverScript = new("""
        local successor = redis.call('GET', KEYS[2])
        if successor then return successor end
        local current = redis.call('GET', KEYS[1])
        if current then return current end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
        return false
        """);

    // KEYS: events, owner, followers. ARGV: retention ms, final (1/0), claim, wake channel, then per entry: id, n, n
    // field/value items. pcall: an entry a retried batch already wrote is refused by its id, and that is fine.
    private static readonly RedisScript AppendScript = new("""
        local i = 5
        while i <= #ARGV do
          local n = tonumber(ARGV[i + 1])
          redis.pcall('XADD', KEYS[1], ARGV[i], unpack(ARGV, i + 2, i + 1 + n))
          i = i + 2 + n
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        if ARGV[2] == '1' then
          if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
          redis.call('PEXPIRE', KEYS[3], ARGV[1])
        end
        redis.call('PUBLISH', ARGV[4], '')
        return 1
        """);

    // KEYS: owner, events, followers. ARGV: claim, lease ms, retention ms. Renews the claim (or takes it back if it lapsed
    // and nobody else took it) and returns how many followers are registered and alive.
    private static readonly RedisScript RenewLeaderScript = new("""
        local current = redis.call('GET', KEYS[1])
        if current == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        elseif not current then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        return redis.call('ZCOUNT', KEYS[3], now, '+inf')
        """);

    // KEYS: followers, owner. ARGV: follower id, lease ms, key ttl ms, claim, the leading replica's channel. Scores are
    // deadlines on Redis's clock (no replica clock skew). Tells the leader (again on every renewal, in case a message was
    // lost) and returns whether the claim still leads: 0 means it ended, or died, without a follower in sight.
    private static readonly RedisScript RenewFollowerScript = new("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('PUBLISH', ARGV[5], ARGV[4])
        if redis.call('GET', KEYS[2]) == ARGV[4] then return 1 end
        return 0
        """);
}
