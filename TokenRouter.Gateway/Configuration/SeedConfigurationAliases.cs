using System.Globalization;

namespace TokenRouter.Gateway.Configuration;

/// <summary>
/// Accepts the seed TokenRouter's environment variable names (<c>REDIS_URL</c>, <c>DEDUP_TTL</c>, …) as aliases of
/// the gateway's configuration keys. An explicitly set configuration key always wins over its alias.
/// </summary>
public static class SeedConfigurationAliases
{
    private static readonly (string Alias, string Key)[] Map =
    [
        ("TOKENROUTER_API_KEYS", "Gateway:ApiKeys"),
        ("AUTH_CACHE_TTL", "Gateway:AuthCacheTtl"),
        ("MAX_REQUEST_BODY_BYTES", "Gateway:MaxRequestBodyBytes"),
        ("MAX_REQUEST_HEADER_BYTES", "Gateway:MaxRequestHeadersBytes"),
        ("TOOL_SORT_ENABLED", "Gateway:ToolSortEnabled"),
        ("CANONICALIZE_ENABLED", "Gateway:CanonicalizeEnabled"),
        ("CACHE_INJECT_ENABLED", "Gateway:CacheInjectEnabled"),
        ("ANTHROPIC_CACHE_TTL", "Gateway:AnthropicCacheTtl"),
        ("DEDUP_ENABLED", "Gateway:DedupEnabled"),
        ("DEDUP_TTL", "Gateway:DedupTtl"),
        ("DEDUP_SCOPE", "Gateway:DedupScope"),
        ("PROVIDER_RESPONSE_TIMEOUT", "Gateway:ProviderResponseTimeout"),
        ("UPSTREAM_IDLE_TIMEOUT", "Gateway:UpstreamIdleTimeout"),
        // The time to the provider's response headers was PROVIDER_RESPONSE_TIMEOUT before routing named it.
        ("UPSTREAM_FIRST_BYTE_TIMEOUT", "Gateway:ProviderResponseTimeout"),
        ("UPSTREAM_CONNECT_TIMEOUT", "Proxy:ConnectTimeout"),
        ("OPENAI_BASE_URL", "Providers:OpenAI:BaseUrl"),
        ("OPENAI_API_KEY", "Providers:OpenAI:ApiKey"),
        ("DEEPSEEK_BASE_URL", "Providers:DeepSeek:BaseUrl"),
        ("DEEPSEEK_API_KEY", "Providers:DeepSeek:ApiKey"),
        ("ANTHROPIC_BASE_URL", "Providers:Anthropic:BaseUrl"),
        ("ANTHROPIC_API_KEY", "Providers:Anthropic:ApiKey"),
        ("SIMULATOR_ENABLED", "Providers:SimulatorEnabled"),
        ("PROXY_MAX_CONNS_PER_HOST", "Proxy:MaxConnectionsPerServer"),
        ("PROXY_IDLE_CONN_TIMEOUT", "Proxy:IdleConnectionTimeout"),
        ("PROXY_CONNECT_TIMEOUT", "Proxy:ConnectTimeout"),
        ("RATE_LIMIT_ENABLED", "Limits:Enabled"),
        ("GLOBAL_CONCURRENT_LIMIT", "Limits:GlobalConcurrent"),
        ("STREAM_CONCURRENT_LIMIT", "Limits:StreamConcurrent"),
        ("NON_STREAM_CONCURRENT_LIMIT", "Limits:NonStreamConcurrent"),
        ("PROVIDER_CONCURRENT_LIMIT", "Limits:ProviderConcurrent"),
        ("REDIS_OUTAGE_POLICY", "RedisOutage:Policy"),
        ("SHUTDOWN_TIMEOUT", "Gateway:ShutdownTimeout"),
        ("BUDGET_TIME_ZONE", "Budgets:TimeZone"),
    ];

    private static readonly string[] DurationKeys =
    [
        "Gateway:AuthCacheTtl", "Gateway:DedupTtl", "Gateway:ToolOrderMemoryTtl", "Gateway:ProviderResponseTimeout", "Gateway:UpstreamIdleTimeout",
        "Proxy:IdleConnectionTimeout", "Proxy:ConnectTimeout", "Limits:QuotaReservationTtl",
        "Routing:RetryBaseDelay", "Routing:MaxRetryAfter", "Routing:Cooldown", "Routing:MaxCooldown", "RedisOutage:ProbeInterval", "Gateway:ShutdownTimeout", "Simulator:DefaultCacheTtl",
    ];

    public static void Apply(IConfigurationManager configuration)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (alias, key) in Map)
        {
            var value = configuration[alias];
            if (!string.IsNullOrWhiteSpace(value) && string.IsNullOrWhiteSpace(configuration[key])) overrides[key] = value;
        }

        if (configuration["TOKENROUTER_FALLBACKS"] is { Length: > 0 } fallbacks)
            AddModelLists(configuration, "TOKENROUTER_FALLBACKS", "Routing:Fallbacks", fallbacks, overrides);
        if (configuration["TOKENROUTER_MODEL_GROUPS"] is { Length: > 0 } groups)
            AddModelLists(configuration, "TOKENROUTER_MODEL_GROUPS", "Routing:ModelGroups", groups, overrides);

        if (configuration["REDIS_URL"] is { Length: > 0 } redisUrl && string.IsNullOrWhiteSpace(configuration.GetConnectionString("redis")))
            overrides["ConnectionStrings:redis"] = RedisUrl.ToConnectionString(redisUrl);

        if (configuration["LOG_LEVEL"] is { Length: > 0 } level && string.IsNullOrWhiteSpace(configuration["Logging:LogLevel:Default"]))
            overrides["Logging:LogLevel:Default"] = level.ToLowerInvariant() switch
            {
                "debug" => "Debug",
                "warn" or "warning" => "Warning",
                "error" => "Error",
                "trace" => "Trace",
                _ => "Information",
            };

        // The seed's PORT: listen on all interfaces there, unless the host was given addresses another way.
        if (configuration["PORT"] is { Length: > 0 } port && int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p)
            && string.IsNullOrWhiteSpace(configuration["urls"]) && string.IsNullOrWhiteSpace(configuration["ASPNETCORE_URLS"])
            && string.IsNullOrWhiteSpace(configuration["HTTP_PORTS"]) && string.IsNullOrWhiteSpace(configuration["ASPNETCORE_HTTP_PORTS"]))
            overrides["urls"] = $"http://0.0.0.0:{p}";

        // Durations may be written Go-style by seed users; the binder only knows TimeSpan text.
        foreach (var key in DurationKeys)
        {
            var value = overrides.TryGetValue(key, out var v) ? v : configuration[key];
            if (value is not null && !value.Contains(':') && DurationParser.TryParse(value, out var ts))
                overrides[key] = ts.ToString("c", CultureInfo.InvariantCulture);
        }

        if (overrides.Count > 0) configuration.AddInMemoryCollection(overrides);
    }

    /// <summary><c>TOKENROUTER_FALLBACKS</c> = <c>{"gpt-4o-mini": ["claude-haiku-4-5", "deepseek-chat"]}</c> becomes
    /// <c>Routing:Fallbacks:gpt-4o-mini:0</c>, … (<c>TOKENROUTER_MODEL_GROUPS</c> = <c>{"fast": [...]}</c>:
    /// <c>Routing:ModelGroups:fast:0</c>, …) unless the configuration already lists that name's models.</summary>
    private static void AddModelLists(IConfiguration configuration, string variable, string section, string json,
        Dictionary<string, string?> overrides)
    {
        Dictionary<string, string[]>? map;
        try
        {
            map = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string[]>>(json);
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new InvalidOperationException($"{variable} must be a JSON object of name → [model, …]: {ex.Message}");
        }
        foreach (var (model, models) in map ?? [])
        {
            // An empty group would silently vanish from the bound options (no keys): say so instead.
            if (section == "Routing:ModelGroups" && (models is null || models.Length == 0))
                throw new InvalidOperationException($"{variable}: the group '{model}' must list one or more models.");
            if (configuration.GetSection($"{section}:{model}").GetChildren().Any()) continue;
            for (var i = 0; i < (models?.Length ?? 0); i++) overrides[$"{section}:{model}:{i}"] = models![i];
        }
    }
}

/// <summary>Turns <c>redis://[user:password@]host:port[/db]</c> into a StackExchange.Redis configuration string.</summary>
public static class RedisUrl
{
    public static string ToConnectionString(string url)
    {
        if (!url.Contains("://", StringComparison.Ordinal)) return url;
        var uri = new Uri(url);
        var parts = new List<string> { $"{uri.Host}:{(uri.Port > 0 ? uri.Port : 6379)}" };
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var userInfo = uri.UserInfo.Split(':', 2);
            if (userInfo.Length == 2)
            {
                if (userInfo[0].Length > 0) parts.Add("user=" + Uri.UnescapeDataString(userInfo[0]));
                parts.Add("password=" + Uri.UnescapeDataString(userInfo[1]));
            }
            else parts.Add("password=" + Uri.UnescapeDataString(userInfo[0]));
        }
        var db = uri.AbsolutePath.Trim('/');
        if (db.Length > 0 && int.TryParse(db, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) parts.Add("defaultDatabase=" + n);
        if (uri.Scheme == "rediss") parts.Add("ssl=true");
        parts.Add("abortConnect=false");
        return string.Join(',', parts);
    }
}
