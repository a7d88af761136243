using System.Text;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Tests.Vendors.UsageReaders;

public sealed class AnthropicUsageReaderTests
{
    private static readonly AnthropicUsageReader Reader = AnthropicUsageReader.Instance;

    private static Usage ReadUsage(string usageJson) => Reader.ReadUsage(usageJson);

    private static Usage ReadResponse(string responseJson) => Reader.ReadResponse(responseJson);

    [Fact]
    public void Cache_reads_and_writes_are_added_to_input_tokens_for_the_whole_prompt()
    {
        var usage = ReadUsage("""
            {"input_tokens":100,"cache_creation_input_tokens":300,"cache_read_input_tokens":2000,
             "cache_creation":{"ephemeral_5m_input_tokens":200,"ephemeral_1h_input_tokens":100},"output_tokens":50}
            """);

        Assert.Equal(new Usage(2400, 2000, 200, 100, 50), usage);
        Assert.Equal(100, usage.UncachedInputTokens);
        Assert.Equal(300, usage.CacheWriteTokens);
    }

    [Fact]
    public void Cache_writes_are_split_by_ttl_from_cache_creation()
    {
        var usage = ReadUsage("""
            {"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":0,
             "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":2048},"output_tokens":7}
            """);

        Assert.Equal(0, usage.CacheWrite5mTokens);
        Assert.Equal(2048, usage.CacheWrite1hTokens);
        Assert.Equal(12 + 2048, usage.PromptTokens);
    }

    [Fact]
    public void Cache_writes_without_a_ttl_breakdown_are_five_minute_writes()
    {
        var usage = ReadUsage("""{"input_tokens":10,"cache_creation_input_tokens":500,"cache_read_input_tokens":0,"output_tokens":3}""");

        Assert.Equal(new Usage(510, 0, 500, 0, 3), usage);
        Assert.Equal(10, usage.UncachedInputTokens);
    }

    [Fact]
    public void Cache_writes_the_ttl_breakdown_leaves_out_are_five_minute_writes()
    {
        var usage = ReadUsage("""{"input_tokens":10,"cache_creation_input_tokens":500,"cache_creation":{"ephemeral_1h_input_tokens":100},"output_tokens":3}""");

        Assert.Equal(400, usage.CacheWrite5mTokens);
        Assert.Equal(100, usage.CacheWrite1hTokens);
        Assert.Equal(510, usage.PromptTokens);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("\"usage\"")]
    public void A_usage_that_is_not_an_object_is_empty(string usageJson)
    {
        Assert.Equal(default, ReadUsage(usageJson));
    }

    [Fact]
    public void A_count_that_is_not_a_positive_int_reads_as_zero()
    {
        var usage = ReadUsage("""{"input_tokens":"10","cache_read_input_tokens":-5,"cache_creation_input_tokens":3000000000,"output_tokens":3}""");

        Assert.Equal(new Usage(0, 0, 0, 0, 3), usage);
    }

    [Fact]
    public void A_response_is_read_from_its_usage_object()
    {
        var usage = ReadResponse("""
            {"id":"msg_1","type":"message","content":[{"type":"text","text":"Done"}],"stop_reason":"end_turn",
             "usage":{"input_tokens":7,"cache_read_input_tokens":64,"output_tokens":2}}
            """);

        Assert.Equal(new Usage(71, 64, 0, 0, 2), usage);
    }

    [Theory]
    [InlineData("""{"id":"msg_1","content":[]}""")]
    [InlineData("""{"id":"msg_1","usage":null}""")]
    [InlineData("""{"id":"msg_1","usage":7}""")]
    [InlineData("""[{"usage":{"input_tokens":7}}]""")]
    public void A_response_without_a_usage_object_is_empty(string responseJson)
    {
        Assert.Equal(default, ReadResponse(responseJson));
    }

    [Fact]
    public void A_body_is_read_from_its_top_level_usage_object()
    {
        var body = """{"id":"msg_1","content":[{"type":"text","text":"{\"usage\":1}"}],"usage":{"input_tokens":7,"output_tokens":2}}"""u8;

        Assert.True(Reader.TryRead(body, out var usage));
        Assert.Equal(new Usage(7, 0, 0, 0, 2), usage);
    }

    [Theory]
    [InlineData("""{"id":"msg_1","content":[]}""", true)]
    [InlineData("""{"id":"msg_1","usage":null}""", true)]
    [InlineData("""{"id":"msg_1",""", false)]
    [InlineData("""event: message_start""", false)]
    public void A_body_without_usage_reads_as_empty_and_one_that_is_not_json_is_not_read(string body, bool read)
    {
        Assert.Equal(read, Reader.TryRead(Encoding.UTF8.GetBytes(body), out var usage));
        Assert.True(usage.IsEmpty);
    }

    [Fact]
    public void The_later_usage_of_a_stream_replaces_the_earlier_and_a_zero_keeps_it()
    {
        // message_start's usage, then message_delta's: cumulative, with input counts repeated or left at zero.
        using var start = JsonDocument.Parse("""{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":11264,"output_tokens":1}""");
        using var delta = JsonDocument.Parse("""{"input_tokens":0,"output_tokens":29}""");
        var acc = new AnthropicUsageAccumulator();

        acc.Apply(start.RootElement);
        acc.Apply(delta.RootElement);

        Assert.Equal(new Usage(472 + 11264, 11264, 0, 0, 29), acc.ToUsage());
    }

    [Fact]
    public void The_ttl_breakdown_of_a_stream_may_arrive_only_with_message_delta()
    {
        using var start = JsonDocument.Parse("""{"input_tokens":12,"output_tokens":1}""");
        using var delta = JsonDocument.Parse("""{"cache_creation_input_tokens":2048,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":2048},"output_tokens":7}""");
        var acc = new AnthropicUsageAccumulator();

        acc.Apply(start.RootElement);
        Assert.Equal(new Usage(12, 0, 0, 0, 1), acc.ToUsage());
        acc.Apply(delta.RootElement);

        Assert.Equal(new Usage(12 + 2048, 0, 0, 2048, 7), acc.ToUsage());
    }

    [Fact]
    public void The_Anthropic_adapter_reads_usage_with_it()
    {
        Assert.Same(Reader, new AnthropicAdapter().Usage);
    }
}
