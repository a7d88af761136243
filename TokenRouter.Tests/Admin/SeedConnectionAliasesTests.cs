using System.Net;
using Microsoft.Extensions.Configuration;
using Npgsql;
using StackExchange.Redis;
using TokenRouter.Admin.Configuration;

namespace TokenRouter.Tests.Admin;

public sealed class SeedConnectionAliasesTests
{
    [Fact]
    public void Database_url_becomes_an_npgsql_connection_string()
    {
        var connectionString = SeedConnectionAliases.PostgresUrlToConnectionString(
            "postgres://tokenrouter:s3cret@db.example.com:5433/tokenrouter?sslmode=disable");

        var parsed = new NpgsqlConnectionStringBuilder(connectionString);
        Assert.Equal("db.example.com", parsed.Host);
        Assert.Equal(5433, parsed.Port);
        Assert.Equal("tokenrouter", parsed.Database);
        Assert.Equal("tokenrouter", parsed.Username);
        Assert.Equal("s3cret", parsed.Password);
        Assert.Equal(SslMode.Disable, parsed.SslMode);
    }

    [Fact]
    public void Database_url_decodes_escaped_credentials_and_defaults_the_port()
    {
        var parsed = new NpgsqlConnectionStringBuilder(SeedConnectionAliases.PostgresUrlToConnectionString(
            "postgresql://app%40corp:p%40ss%3Aw%2Frd@localhost/ledger?sslmode=require&application_name=admin"));

        Assert.Equal("app@corp", parsed.Username);
        Assert.Equal("p@ss:w/rd", parsed.Password);
        Assert.Equal(5432, parsed.Port);
        Assert.Equal("ledger", parsed.Database);
        Assert.Equal(SslMode.Require, parsed.SslMode);
        Assert.Equal("admin", parsed.ApplicationName);
    }

    [Theory]
    [InlineData("mysql://user:hunter2@host/db")]
    [InlineData("not a url hunter2")]
    [InlineData("postgres://user:hunter2@host/db?sslmode=sometimes")]
    public void Invalid_database_url_is_refused_without_echoing_the_password(string url)
    {
        var error = Assert.Throws<FormatException>(() => SeedConnectionAliases.PostgresUrlToConnectionString(url));

        Assert.Contains("DATABASE_URL", error.Message);
        Assert.DoesNotContain("hunter2", error.Message);
    }

    [Fact]
    public void Redis_url_with_password_and_database_becomes_a_stackexchange_configuration()
    {
        var options = ConfigurationOptions.Parse(SeedConnectionAliases.RedisUrlToConfiguration("redis://:p%40ss@cache.internal:6380/2"));

        Assert.Equal("cache.internal:6380", HostAndPort(Assert.Single(options.EndPoints)));
        Assert.Equal("p@ss", options.Password);
        Assert.Equal(2, options.DefaultDatabase);
        Assert.False(options.Ssl);
        Assert.False(options.AbortOnConnectFail); // a Redis outage must not stop Admin from starting
    }

    [Fact]
    public void Redis_url_without_port_uses_6379_and_rediss_turns_on_tls()
    {
        var plain = ConfigurationOptions.Parse(SeedConnectionAliases.RedisUrlToConfiguration("redis://localhost"));
        var tls = ConfigurationOptions.Parse(SeedConnectionAliases.RedisUrlToConfiguration("rediss://user:pw@redis.example.com/0"));

        Assert.Equal("localhost:6379", HostAndPort(Assert.Single(plain.EndPoints)));
        Assert.Null(plain.Password);
        Assert.True(tls.Ssl);
        Assert.Equal("user", tls.User);
        Assert.Equal("pw", tls.Password);
        Assert.Equal(0, tls.DefaultDatabase);
    }

    [Theory]
    [InlineData("http://localhost:6379")]
    [InlineData("redis://localhost:6379/zero")]
    public void Invalid_redis_url_is_refused(string url)
    {
        var error = Assert.Throws<FormatException>(() => SeedConnectionAliases.RedisUrlToConfiguration(url));

        Assert.Contains("REDIS_URL", error.Message);
    }

    [Fact]
    public void Aliases_fill_in_missing_connection_strings()
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = "postgres://u:p@pg:5432/tokenrouter?sslmode=disable",
            ["REDIS_URL"] = "redis://redis:6379/0",
        });

        configuration.AddSeedConnectionAliases();

        Assert.Equal("pg", new NpgsqlConnectionStringBuilder(configuration.GetConnectionString("tokenrouter")).Host);
        Assert.Equal("redis:6379", HostAndPort(Assert.Single(ConfigurationOptions.Parse(configuration.GetConnectionString("redis")!).EndPoints)));
    }

    [Fact]
    public void Explicit_connection_strings_win_over_aliases()
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:tokenrouter"] = "Host=explicit;Database=tokenrouter",
            ["ConnectionStrings:redis"] = "explicit:6379",
            ["DATABASE_URL"] = "postgres://u:p@alias:5432/tokenrouter",
            ["REDIS_URL"] = "redis://alias:6379",
        });

        Assert.Empty(SeedConnectionAliases.Resolve(configuration));
        configuration.AddSeedConnectionAliases();
        Assert.Equal("Host=explicit;Database=tokenrouter", configuration.GetConnectionString("tokenrouter"));
        Assert.Equal("explicit:6379", configuration.GetConnectionString("redis"));
    }

    [Fact]
    public void Nothing_is_added_when_no_alias_is_set()
    {
        Assert.Empty(SeedConnectionAliases.Resolve(new ConfigurationManager()));
    }

    private static string HostAndPort(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        IPEndPoint ip => $"{ip.Address}:{ip.Port}",
        _ => endPoint.ToString()!,
    };
}
