using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace TokenRouter.Gateway.Redis;

/// <summary>
/// A Lua script sent by its SHA1 (<c>EVALSHA</c>), which is computed once here. Given the script's text instead,
/// StackExchange.Redis looks its hash up per call in a table keyed by that text, hashing all of it each time: with the
/// 3 KB quota scripts that was ~3 µs of CPU per request (<c>bench/results/load-redis-scripts-json.md</c>). Its own
/// <c>LoadedLuaScript</c> also sends <c>EVALSHA</c>, but it is loaded into one server and has no fallback after a restart
/// or failover, and <c>LuaScript</c> binds named parameters from an object rather than the KEYS/ARGV arrays used here.
/// </summary>
public sealed class RedisScript(string text)
{
    public string Text { get; } = text;

    public byte[] Sha1 { get; } = SHA1.HashData(Encoding.UTF8.GetBytes(text));

    /// <summary>
    /// Runs the script by its hash. When Redis does not know it (a restart, a failover, <c>SCRIPT FLUSH</c>), the
    /// script did not run: it is sent once more with its text, which also loads it for the calls after.
    /// </summary>
    public async Task<RedisResult> EvaluateAsync(IDatabaseAsync database, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return await database.ScriptEvaluateAsync(Sha1, keys, values);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(Text, keys, values);
        }
    }
}
