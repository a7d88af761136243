using System.Text;
using TokenRouter.Simulator;

namespace TokenRouter.Tests.Simulator;

public sealed class SimCoreTests
{
    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(4, 1)]
    [InlineData(5, 2)]
    [InlineData(4096, 1024)]
    public void TokenCountIsCeilingOfUtf8BytesOverFour(int bytes, int tokens)
    {
        Assert.Equal(tokens, SimTokenizer.CountTokens(bytes));
        Assert.Equal(tokens, SimTokenizer.CountTokens(new string('x', bytes)));
    }

    [Fact]
    public void TokenCountUsesUtf8Bytes()
    {
        Assert.Equal(2, SimTokenizer.CountTokens("caf\u00e9\u00e9")); // 7 bytes
    }

    [Fact]
    public void ChainedHashDependsOnTheWholePrefixAndBlockSplit()
    {
        var ab = SimHash.Of("ab"u8).Append("c"u8);
        var a = SimHash.Of("a"u8).Append("bc"u8);

        Assert.Equal(ab, SimHash.Of("ab"u8).Append("c"u8));
        Assert.NotEqual(ab, a);
        Assert.NotEqual(SimHash.Of(Encoding.UTF8.GetBytes(new string('x', 512))), SimHash.Of(Encoding.UTF8.GetBytes(new string('x', 511) + "y")));
    }

    [Theory]
    [InlineData(1_000)]
    [InlineData(20_000)]
    public void PrefixCacheStaysBoundedAndKeepsTheMostRecentEntries(int maxEntries)
    {
        var clock = new ManualTimeProvider();
        var cache = new SimPrefixCache(clock, maxEntries);
        var now = cache.NowTicks;
        SimHash last = default;

        for (var i = 0; i < maxEntries * 10; i++)
        {
            last = SimHash.Of(BitConverter.GetBytes(i));
            cache.Put(last, now + i, TimeSpan.FromMinutes(5));
        }

        Assert.InRange(cache.Count, maxEntries / 2, maxEntries);
        Assert.True(cache.TryGet(last, now, out _));
        Assert.False(cache.TryGet(SimHash.Of(BitConverter.GetBytes(0)), now, out _));
    }

    [Fact]
    public void PrefixCacheEntryExpiresAndAOneHourEntryIsNotShortenedByAFiveMinuteRefresh()
    {
        var clock = new ManualTimeProvider();
        var cache = new SimPrefixCache(clock, maxEntries: 1_000);
        var key = SimHash.Of("k"u8);
        var shortKey = SimHash.Of("s"u8);
        var now = cache.NowTicks;

        cache.Put(key, now, TimeSpan.FromHours(1), longTtl: true);
        cache.Put(key, now, TimeSpan.FromMinutes(5));
        cache.Put(shortKey, now, TimeSpan.FromMinutes(5));
        var later = now + TimeSpan.FromMinutes(30).Ticks;

        Assert.True(cache.TryGet(key, later, out var longTtl));
        Assert.True(longTtl);
        Assert.False(cache.TryGet(shortKey, later, out _));
    }

    [Fact]
    public void ArgumentsAreSynthesizedFromRequiredPropertiesInSchemaOrder()
    {
        using var schema = System.Text.Json.JsonDocument.Parse("""
            {"type":"object","properties":{"b":{"type":"boolean"},"skip":{"type":"string"},"a":{"type":"array","items":{"type":"number"},"minItems":2},
             "o":{"type":"object","properties":{"x":{"type":["null","integer"]}},"required":["x"]}},"required":["o","a","b"]}
            """);

        var arguments = SimReply.SynthesizeArguments(schema.RootElement);

        Assert.Equal("""{"b":true,"a":[1,1],"o":{"x":1}}""", arguments);
    }
}
