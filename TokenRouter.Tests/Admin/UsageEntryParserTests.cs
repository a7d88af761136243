using StackExchange.Redis;
using TokenRouter.Admin.Ledger;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

public sealed class UsageEntryParserTests
{
    private static readonly DateTimeOffset Now = new(2026, 5, 1, 0, 0, 0, TimeSpan.Zero);

    private static ParsedUsageEntry Parse(NameValueEntry[] fields, string id = "1700000000000-0") =>
        UsageEntryParser.Parse(new StreamEntry(id, fields), Now);

    [Fact]
    public void Absent_optional_fields_get_neutral_values_and_the_entry_id_time()
    {
        var parsed = Parse([
            new("request_id", "r1"), new("model", "gpt-4o"), new("prompt_tokens", "10"), new("completion_tokens", "2"),
            new("cost_usd", "0.001"),
        ], id: "1700000000123-7");

        var record = Assert.IsType<TokenRouter.Admin.Data.UsageRecord>(parsed.Record);
        Assert.Null(parsed.DeadLetter);
        Assert.Equal("unknown", record.Provider);
        Assert.Null(record.ApiKeyId);
        Assert.Equal(0, record.CachedReadTokens);
        Assert.Equal(0m, record.CacheSavingsUsd);
        Assert.False(record.Estimated);
        Assert.False(record.Unpriced);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1700000000123), record.CreatedAt);
    }

    [Fact]
    public void Entry_without_cost_is_unpriced_whatever_its_flag_says()
    {
        var parsed = Parse(UsageEntry("r2", new Dictionary<string, string?> { ["cost_usd"] = "", ["unpriced"] = "0" }));

        Assert.Null(parsed.Record!.CostUsd);
        Assert.True(parsed.Record.Unpriced);
    }

    [Fact]
    public void Negative_cache_savings_are_kept_because_cache_writes_can_cost_more_than_they_save()
    {
        var parsed = Parse(UsageEntry("r3", new Dictionary<string, string?> { ["cache_savings_usd"] = "-0.0025" }));

        Assert.Equal(-0.0025m, parsed.Record!.CacheSavingsUsd);
    }

    [Theory]
    [InlineData("request_id", null, "request_id")]
    [InlineData("model", "", "model")]
    [InlineData("prompt_tokens", "-5", "prompt_tokens")]
    [InlineData("prompt_tokens", "1.5", "prompt_tokens")]
    [InlineData("completion_tokens", "99999999999", "completion_tokens")]
    [InlineData("cost_usd", "free", "cost_usd")]
    [InlineData("cost_usd", "-0.01", "cost_usd")]
    [InlineData("dedup_savings_usd", "NaN", "dedup_savings_usd")]
    [InlineData("deduplicated", "yes", "deduplicated")]
    [InlineData("estimated", "2", "estimated")]
    [InlineData("ts", "yesterday", "ts")]
    [InlineData("ts", "1", "ts")]
    [InlineData("status", "OK", "status")]
    public void Unreadable_field_parks_the_entry_with_a_reason_naming_the_field(string field, string? value, string named)
    {
        var parsed = Parse(UsageEntry("r4", new Dictionary<string, string?> { [field] = value }));

        Assert.Null(parsed.Record);
        var dead = Assert.IsType<TokenRouter.Admin.Data.UsageDeadLetter>(parsed.DeadLetter);
        Assert.Contains(named, dead.Reason);
        Assert.Equal("1700000000000-0", dead.StreamId);
        Assert.Equal(Now, dead.ReceivedAt);
    }

    [Fact]
    public void Entry_deleted_from_the_stream_is_parked()
    {
        var parsed = Parse([]);

        Assert.Null(parsed.Record);
        Assert.Contains("no fields", parsed.DeadLetter!.Reason);
    }

    [Fact]
    public void Text_with_a_nul_character_is_parked_with_fields_postgres_can_store()
    {
        var parsed = Parse(UsageEntry("r\0nul", new Dictionary<string, string?> { ["model"] = "gpt\0x" }));

        Assert.Null(parsed.Record);
        Assert.Contains("NUL", parsed.DeadLetter!.Reason);
        Assert.DoesNotContain("\0", parsed.DeadLetter.RequestId);
        Assert.DoesNotContain("\\u0000", parsed.DeadLetter.Fields);
    }

    [Fact]
    public void Over_long_request_id_is_parked_rather_than_cut()
    {
        var parsed = Parse(UsageEntry(new string('x', 129)));

        Assert.Null(parsed.Record);
        Assert.Null(parsed.DeadLetter!.RequestId);
        Assert.Contains("request_id", parsed.DeadLetter.Reason);
    }

    [Theory]
    [InlineData("5-3", "5-4")]
    [InlineData("5-18446744073709551615", "6-0")]
    public void Stream_id_successor_is_the_next_possible_id(string id, string next)
    {
        Assert.Equal(next, StreamId.Parse(id).Successor().ToString());
        Assert.True(StreamId.Parse(id) < StreamId.Parse(next));
    }
}
