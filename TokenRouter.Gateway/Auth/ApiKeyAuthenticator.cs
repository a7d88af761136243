using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Resilience;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Auth;

/// <summary>
/// Authenticates client keys (<c>Authorization: Bearer</c> or <c>x-api-key</c>). Static keys from
/// <c>TOKENROUTER_API_KEYS</c> work in every mode; keys created by Admin are read from Redis (see
/// <see cref="RedisContract"/>) and cached locally for <c>AUTH_CACHE_TTL</c>, so the hot path rarely touches Redis
/// and a revoked key stops working within that TTL (sooner: Admin's change notification evicts the entry).
/// </summary>
public sealed partial class ApiKeyAuthenticator : IDisposable
{
    private readonly Dictionary<string, ClientIdentity> _staticKeys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    private readonly IConnectionMultiplexer? _redis;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;
    private readonly ILogger<ApiKeyAuthenticator> _logger;
    private readonly RedisCircuit? _circuit;
    private readonly GatewayMetrics? _metrics;
    private int _servingStale;
    private const int MaxCacheEntries = 100_000;

    private readonly record struct CacheEntry(ClientIdentity? Identity, long ExpiresAt);

    public ApiKeyAuthenticator(IOptions<GatewayOptions> options, ILogger<ApiKeyAuthenticator> logger, TimeProvider time,
        IConnectionMultiplexer? redis = null, RedisCircuit? circuit = null, GatewayMetrics? metrics = null)
    {
        _redis = redis;
        _circuit = circuit;
        _metrics = metrics;
        _ttl = options.Value.AuthCacheTtl;
        _time = time;
        _logger = logger;

        var configured = (options.Value.ApiKeys ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var key in configured) AddStatic(key);
        if (_staticKeys.Count == 0 && redis is null)
        {
            // Embedded mode with no keys configured: a newcomer still needs one to try the gateway.
            var generated = RedisContract.ClientKeyPrefix + Base64Url(RandomNumberGenerator.GetBytes(32));
            AddStatic(generated);
            LogGeneratedKey(generated);
        }
        if (redis is not null)
        {
            redis.GetSubscriber().Subscribe(RedisChannel.Literal(RedisContract.KeysChangedChannel), (_, changed) =>
            {
                if (!changed.IsNullOrEmpty) _cache.TryRemove(changed.ToString(), out CacheEntry _);
            });
        }
    }

    public bool UsesRedis => _redis is not null;

    private void AddStatic(string key)
    {
        var hash = RedisContract.HashClientKey(key);
        _staticKeys[hash] = new ClientIdentity("static-" + hash[..12], "static", hash);
    }

    /// <summary>Reads the key from the request headers; empty when none was sent.</summary>
    public static ReadOnlySpan<char> ExtractKey(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString().AsSpan();
        if (authorization.Length > 7 && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return authorization[7..].Trim();
        return request.Headers["x-api-key"].ToString().AsSpan().Trim();
    }

    public async ValueTask<ClientIdentity> AuthenticateAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        // A key known here is found by its hash without a string for the key or for its hash (~250 B a request less).
        if (TryFind(ExtractKey(request), out var found, out var hash)) return Check(found);
        return Check(await RefreshAsync(hash));
    }

    /// <summary>
    /// True when the key is static, or cached and fresh (<paramref name="found"/>: its identity, null for a key known to
    /// be invalid); false when Redis has to be asked, with the key's <paramref name="hash"/> to ask for.
    /// </summary>
    private bool TryFind(ReadOnlySpan<char> key, out ClientIdentity? found, out string hash)
    {
        if (key.IsEmpty)
            throw ApiError.Unauthorized("Missing API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.");
        Span<char> hex = stackalloc char[RedisContract.ClientKeyHashLength];
        RedisContract.HashClientKey(key, hex);
        hash = "";
        if (_staticKeys.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(hex, out found)) return true;
        if (_cache.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(hex, out var entry) && entry.ExpiresAt >= _time.GetTimestamp())
        {
            found = entry.Identity;
            if (found is not null && _servingStale != 0) Interlocked.Exchange(ref _servingStale, 0);
            return true;
        }
        hash = new string(hex);
        return false;
    }

    /// <summary>Reads the key from Redis into the cache; serves its last known identity while Redis is away.</summary>
    private async ValueTask<ClientIdentity?> RefreshAsync(string hash)
    {
        var now = _time.GetTimestamp();
        var cached = _cache.TryGetValue(hash, out var entry);
        ClientIdentity? identity;
        try
        {
            identity = _redis is null ? null : await LookupAsync(hash);
        }
        catch (ApiError) when (cached && entry.Identity is not null)
        {
            // Redis is away: a key this process already knows keeps working on its last known settings (a revocation
            // made meanwhile takes effect once Redis answers). Unknown keys get the 503.
            if (Interlocked.Exchange(ref _servingStale, 1) == 0) LogServingStale();
            _metrics?.StaleKeyServed();
            return entry.Identity;
        }
        // Unknown keys are remembered briefly too, so a client hammering with a bad key cannot hammer Redis.
        var ttl = identity is null ? TimeSpan.FromTicks(Math.Min(_ttl.Ticks, TimeSpan.FromSeconds(5).Ticks)) : _ttl;
        if (_cache.Count >= MaxCacheEntries) _cache.Clear();
        _cache[hash] = new CacheEntry(identity, now + (long)(ttl.TotalSeconds * _time.TimestampFrequency));
        if (identity is not null && _servingStale != 0) Interlocked.Exchange(ref _servingStale, 0);
        return identity;
    }

    private ClientIdentity Check(ClientIdentity? found)
    {
        if (found is null) throw ApiError.Unauthorized("Invalid API key.");
        if (found.ExpiresAt is { } expires && expires <= _time.GetUtcNow()) throw ApiError.Unauthorized("This API key has expired.");
        return found;
    }

    private async Task<ClientIdentity?> LookupAsync(string hash)
    {
        HashEntry[] fields;
        try
        {
            var key = RedisContract.ApiKeyHashKey(hash);
            fields = _circuit is null
                ? await _redis!.GetDatabase().HashGetAllAsync(key)
                : await _circuit.ExecuteAsync(static s => new ValueTask<HashEntry[]>(s.Redis.GetDatabase().HashGetAllAsync(s.Key)), (Redis: _redis!, Key: key));
        }
        catch (RedisException ex)
        {
            if (_circuit is null || !_circuit.IsDown) LogRedisUnavailable(ex.GetType().Name);
            throw new ApiError(StatusCodes.Status503ServiceUnavailable, "api_error", "The key store is temporarily unavailable; retry shortly.", "key_store_unavailable")
            {
                RetryAfterSeconds = 1,
            };
        }
        if (fields.Length == 0) return null;
        string? id = null, name = null;
        decimal? quota = null;
        int? rpm = null, tpm = null;
        DateTimeOffset? expires = null;
        BudgetDuration? duration = null;
        ModelAllowList? models = null;
        string? teamId = null, teamName = null;
        decimal? teamBudget = null;
        BudgetDuration? teamDuration = null;
        int? teamRpm = null, teamTpm = null;
        ModelAllowList? teamModels = null;
        var enabled = true;
        foreach (var f in fields)
        {
            var value = f.Value.ToString();
            switch (f.Name.ToString())
            {
                case RedisContract.KeyFields.Id: id = value; break;
                case RedisContract.KeyFields.Name: name = value; break;
                case RedisContract.KeyFields.Enabled: enabled = value == "1"; break;
                case RedisContract.KeyFields.QuotaUsd when decimal.TryParse(value, NumberStyles.Number, CultureInfo.InvariantCulture, out var q): quota = q; break;
                case RedisContract.KeyFields.RequestsPerMinute when int.TryParse(value, CultureInfo.InvariantCulture, out var r): rpm = r; break;
                case RedisContract.KeyFields.TokensPerMinute when int.TryParse(value, CultureInfo.InvariantCulture, out var t): tpm = t; break;
                case RedisContract.KeyFields.ExpiresAtUnix when long.TryParse(value, CultureInfo.InvariantCulture, out var e): expires = DateTimeOffset.FromUnixTimeSeconds(e); break;
                case RedisContract.KeyFields.BudgetDuration when BudgetDuration.TryParse(value, out var d): duration = d; break;
                case RedisContract.KeyFields.Models: models = ModelAllowList.Parse(value); break;
                case RedisContract.KeyFields.TeamId: teamId = value; break;
                case RedisContract.KeyFields.TeamName: teamName = value; break;
                case RedisContract.KeyFields.TeamBudgetUsd when decimal.TryParse(value, NumberStyles.Number, CultureInfo.InvariantCulture, out var b): teamBudget = b; break;
                case RedisContract.KeyFields.TeamBudgetDuration when BudgetDuration.TryParse(value, out var td): teamDuration = td; break;
                case RedisContract.KeyFields.TeamRequestsPerMinute when int.TryParse(value, CultureInfo.InvariantCulture, out var tr): teamRpm = tr; break;
                case RedisContract.KeyFields.TeamTokensPerMinute when int.TryParse(value, CultureInfo.InvariantCulture, out var tt): teamTpm = tt; break;
                case RedisContract.KeyFields.TeamModels: teamModels = ModelAllowList.Parse(value); break;
            }
        }
        if (!enabled || id is null) return null;
        var team = teamId is null ? null : new TeamIdentity(teamId, teamName ?? "", teamBudget, teamDuration, teamRpm, teamTpm, teamModels);
        return new ClientIdentity(id, name ?? "", hash, quota, rpm, tpm, expires, duration, team, models);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public void Dispose()
    {
        if (_redis is not null)
        {
            try
            {
                // Fire and forget: shutting down must not wait on (or fail with) a slow Redis; the subscription dies
                // with the connection anyway.
                _redis.GetSubscriber().Unsubscribe(RedisChannel.Literal(RedisContract.KeysChangedChannel), flags: CommandFlags.FireAndForget);
            }
            catch (RedisException)
            {
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "No TOKENROUTER_API_KEYS configured and no Redis: generated a client key for this run (shown once): {Key}")]
    private partial void LogGeneratedKey(string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis is unreachable: known client keys are served from the local cache past AUTH_CACHE_TTL until it answers")]
    private partial void LogServingStale();

    [LoggerMessage(Level = LogLevel.Error, Message = "Redis key lookup failed ({Error}); answering 503")]
    private partial void LogRedisUnavailable(string error);
}
