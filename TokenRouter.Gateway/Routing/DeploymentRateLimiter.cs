using System.Collections.Concurrent;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// Per-deployment RPM/TPM (a provider key's own limits), counted in fixed one-minute windows on this replica. A
/// deployment at its limit is saturated: the balancer puts it last and failover skips it, so the request goes to the next
/// deployment in rendezvous order; when all are saturated the client gets a 429 with <c>Retry-After</c>.
/// </summary>
/// <remarks>
/// Local, not in Redis, on purpose: it is checked on every attempt, and a Redis round trip there would cost every request
/// latency for a limit the provider enforces anyway (its 429 with Retry-After cools the deployment down across replicas
/// through <see cref="RedisDeploymentCooldowns"/>). With N replicas, each allows the full limit: configure limit ÷ N to stay
/// strictly under the provider's.
/// </remarks>
public sealed class DeploymentRateLimiter(TimeProvider time)
{
    private sealed class Window
    {
        public long Minute;
        public int Requests;
        public long Tokens;
        public readonly Lock Gate = new();
    }

    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);

    private long Minute => time.GetUtcNow().ToUnixTimeSeconds() / 60;

    /// <summary>Seconds until the current window ends (at least 1).</summary>
    public int RetryAfterSeconds => Math.Max(1, 60 - (int)(time.GetUtcNow().ToUnixTimeSeconds() % 60));

    /// <summary>Whether the deployment is at its RPM or TPM in this window (no limit: never).</summary>
    public bool IsSaturated(string id, int? rpm, int? tpm)
    {
        if ((rpm is null && tpm is null) || !_windows.TryGetValue(id, out var w)) return false;
        lock (w.Gate)
        {
            if (w.Minute != Minute) return false;
            return (rpm is { } r && w.Requests >= r) || (tpm is { } t && w.Tokens >= t);
        }
    }

    /// <summary>Counts one request against the deployment unless it is saturated; false = saturated, nothing counted.</summary>
    public bool TryAcquire(string id, int? rpm, int? tpm)
    {
        if (rpm is null && tpm is null) return true;
        var w = _windows.GetOrAdd(id, static _ => new Window());
        var minute = Minute;
        lock (w.Gate)
        {
            if (w.Minute != minute) (w.Minute, w.Requests, w.Tokens) = (minute, 0, 0);
            if ((rpm is { } r && w.Requests >= r) || (tpm is { } t && w.Tokens >= t)) return false;
            w.Requests++;
            return true;
        }
    }

    /// <summary>Adds a served request's tokens (prompt + completion) to the deployment's TPM window.</summary>
    public void AddTokens(string id, int? tpm, long tokens)
    {
        if (tpm is null || tokens <= 0) return;
        var w = _windows.GetOrAdd(id, static _ => new Window());
        var minute = Minute;
        lock (w.Gate)
        {
            if (w.Minute != minute) (w.Minute, w.Requests, w.Tokens) = (minute, 0, 0);
            w.Tokens += tokens;
        }
    }
}
