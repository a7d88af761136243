using Npgsql;
using StackExchange.Redis;

namespace TokenRouter.Admin.Configuration;

/// <summary>
/// The seed's URL-style variables (<c>DATABASE_URL</c>, <c>REDIS_URL</c>) mapped onto the connection strings the
/// Aspire clients read. An explicit <c>ConnectionStrings:*</c> entry (what the AppHost injects) always wins.
/// </summary>
public static class SeedConnectionAliases
{
    public const string DatabaseUrlKey = "DATABASE_URL";
    public const string RedisUrlKey = "REDIS_URL";
    public const string DatabaseConnectionName = "tokenrouter";
    public const string RedisConnectionName = "redis";

    /// <summary>Adds the mapped connection strings as a configuration source when only the seed aliases are set.</summary>
    public static IConfigurationBuilder AddSeedConnectionAliases(this IConfigurationManager configuration)
    {
        var mapped = Resolve(configuration);
        return mapped.Count == 0 ? configuration : configuration.AddInMemoryCollection(mapped);
    }

    /// <summary>The <c>ConnectionStrings:*</c> entries to add: only for aliases that are set and whose target is absent.</summary>
    public static Dictionary<string, string?> Resolve(IConfiguration configuration)
    {
        var mapped = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);

        var databaseUrl = configuration[DatabaseUrlKey];
        if (string.IsNullOrWhiteSpace(configuration.GetConnectionString(DatabaseConnectionName)) &&
            !string.IsNullOrWhiteSpace(databaseUrl))
        {
            mapped[$"ConnectionStrings:{DatabaseConnectionName}"] = PostgresUrlToConnectionString(databaseUrl);
        }

        var redisUrl = configuration[RedisUrlKey];
        if (string.IsNullOrWhiteSpace(configuration.GetConnectionString(RedisConnectionName)) &&
            !string.IsNullOrWhiteSpace(redisUrl))
        {
            mapped[$"ConnectionStrings:{RedisConnectionName}"] = RedisUrlToConfiguration(redisUrl);
        }

        return mapped;
    }

    /// <summary>
    /// <c>postgres[ql]://user:pass@host:port/db?sslmode=…</c> → Npgsql connection string. Error messages never echo
    /// the URL: it carries a password.
    /// </summary>
    public static string PostgresUrlToConnectionString(string url)
    {
        if (!Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) ||
            uri.Scheme is not ("postgres" or "postgresql") || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException(
                $"{DatabaseUrlKey} must look like postgres://user:password@host:5432/database?sslmode=disable.");
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
        };

        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        var (user, password) = SplitUserInfo(uri.UserInfo);
        if (user is not null)
        {
            builder.Username = user;
        }
        if (password is not null)
        {
            builder.Password = password;
        }

        foreach (var (name, value) in ParseQuery(uri.Query))
        {
            switch (name)
            {
                case "sslmode":
                    builder.SslMode = value switch
                    {
                        "disable" => SslMode.Disable,
                        "allow" => SslMode.Allow,
                        "prefer" => SslMode.Prefer,
                        "require" => SslMode.Require,
                        "verify-ca" => SslMode.VerifyCA,
                        "verify-full" => SslMode.VerifyFull,
                        _ => throw new FormatException($"{DatabaseUrlKey} has an unknown sslmode '{value}'."),
                    };
                    break;
                case "connect_timeout" when int.TryParse(value, out var seconds):
                    builder.Timeout = seconds;
                    break;
                case "application_name":
                    builder.ApplicationName = value;
                    break;
                    // Other libpq parameters have no bearing here; ignoring them beats refusing to start.
            }
        }

        return builder.ConnectionString;
    }

    /// <summary>
    /// <c>redis[s]://[[user]:password@]host[:port][/db]</c> → StackExchange.Redis configuration string.
    /// <c>abortConnect=false</c> so a Redis that is down at start-up does not stop Admin: the DB is the truth.
    /// </summary>
    public static string RedisUrlToConfiguration(string url)
    {
        if (!Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) ||
            uri.Scheme is not ("redis" or "rediss") || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException($"{RedisUrlKey} must look like redis://[:password@]host:6379[/db].");
        }

        var options = new ConfigurationOptions
        {
            AbortOnConnectFail = false,
            Ssl = uri.Scheme == "rediss",
        };
        options.EndPoints.Add(uri.Host, uri.IsDefaultPort || uri.Port <= 0 ? 6379 : uri.Port);

        var (user, password) = SplitUserInfo(uri.UserInfo);
        if (!string.IsNullOrEmpty(user))
        {
            options.User = user;
        }
        if (!string.IsNullOrEmpty(password))
        {
            options.Password = password;
        }

        var path = uri.AbsolutePath.Trim('/');
        if (path.Length > 0)
        {
            if (!int.TryParse(path, out var db) || db < 0)
            {
                throw new FormatException($"{RedisUrlKey} has a database index that is not a number: use /0, /1, ….");
            }
            options.DefaultDatabase = db;
        }

        return options.ToString(includePassword: true);
    }

    private static (string? User, string? Password) SplitUserInfo(string userInfo)
    {
        if (userInfo.Length == 0)
        {
            return (null, null);
        }

        var colon = userInfo.IndexOf(':');
        return colon < 0
            ? (Uri.UnescapeDataString(userInfo), null)
            : (Uri.UnescapeDataString(userInfo[..colon]), Uri.UnescapeDataString(userInfo[(colon + 1)..]));
    }

    private static IEnumerable<(string Name, string Value)> ParseQuery(string query)
    {
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=');
            var name = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]).ToLowerInvariant();
            var value = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..].Replace('+', ' '));
            yield return (name, value);
        }
    }
}
