using Microsoft.Extensions.Configuration;
using TokenRouter.Gateway.Configuration;

namespace TokenRouter.Tests.Configuration;

public sealed class SeedConfigurationAliasesTests
{
    private static ConfigurationManager Configure(Dictionary<string, string?> values) => SeedConfiguration.From(values);

    [Fact]
    public void Seed_switch_variables_set_the_gateway_switches()
    {
        var c = Configure(new() { ["TOOL_SORT_ENABLED"] = "false", ["CACHE_INJECT_ENABLED"] = "false", ["DEDUP_ENABLED"] = "false" });

        Assert.Equal("false", c["Gateway:ToolSortEnabled"]);
        Assert.Equal("false", c["Gateway:CacheInjectEnabled"]);
        Assert.Equal("false", c["Gateway:DedupEnabled"]);
    }

    [Fact]
    public void Explicit_configuration_key_wins_over_its_alias()
    {
        var c = Configure(new() { ["DEDUP_ENABLED"] = "false", ["Gateway:DedupEnabled"] = "true" });

        Assert.Equal("true", c["Gateway:DedupEnabled"]);
    }

    [Theory]
    [InlineData("90s", "00:01:30")]
    [InlineData("2m", "00:02:00")]
    [InlineData("1h30m", "01:30:00")]
    [InlineData("500ms", "00:00:00.5000000")]
    public void Go_style_durations_become_timespans(string value, string expected)
    {
        var c = Configure(new() { ["DEDUP_TTL"] = value, ["AUTH_CACHE_TTL"] = value });

        Assert.Equal(expected, c["Gateway:DedupTtl"]);
        Assert.Equal(expected, c["Gateway:AuthCacheTtl"]);
    }

    [Fact]
    public void Redis_url_becomes_a_connection_string_and_port_an_address()
    {
        var c = Configure(new() { ["REDIS_URL"] = "redis://:s3cret@cache.internal:6380/2", ["PORT"] = "9090" });

        Assert.Equal("cache.internal:6380,password=s3cret,defaultDatabase=2,abortConnect=false", c.GetConnectionString("redis"));
        Assert.Equal("http://0.0.0.0:9090", c["urls"]);
    }

    [Fact]
    public void Provider_variables_configure_the_providers()
    {
        var c = Configure(new() { ["OPENAI_BASE_URL"] = "http://127.0.0.1:1234/v1", ["OPENAI_API_KEY"] = "sk-x", ["LOG_LEVEL"] = "warn" });

        Assert.Equal("http://127.0.0.1:1234/v1", c["Providers:OpenAI:BaseUrl"]);
        Assert.Equal("sk-x", c["Providers:OpenAI:ApiKey"]);
        Assert.Equal("Warning", c["Logging:LogLevel:Default"]);
    }

    [Theory]
    [InlineData("2m", 120)]
    [InlineData("00:00:05", 5)]
    [InlineData("1.5s", 1.5)]
    public void Duration_parser_reads_go_and_dotnet_forms(string text, double seconds)
    {
        Assert.True(DurationParser.TryParse(text, out var value));
        Assert.Equal(seconds, value.TotalSeconds);
    }

    [Theory]
    [InlineData("")]
    [InlineData("soon")]
    [InlineData("5y")]
    public void Duration_parser_rejects_nonsense(string text) => Assert.False(DurationParser.TryParse(text, out _));
}
