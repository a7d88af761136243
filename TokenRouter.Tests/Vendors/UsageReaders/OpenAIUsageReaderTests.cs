using System.Text;
using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Vendors.OpenAI;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Tests.Vendors.UsageReaders;

public sealed class OpenAIUsageReaderTests
{
    private static readonly OpenAIUsageReader Reader = OpenAIUsageReader.Instance;

    private static Usage ReadUsage(string usageJson) => Reader.ReadUsage(usageJson);

    private static Usage ReadResponse(string responseJson) => Reader.ReadResponse(responseJson);

    [Fact]
    public void Cached_tokens_are_part_of_prompt_tokens()
    {
        var usage = ReadUsage("""{"prompt_tokens":2048,"completion_tokens":30,"total_tokens":2078,"prompt_tokens_details":{"cached_tokens":1920}}""");

        Assert.Equal(new Usage(2048, 1920, 0, 0, 30), usage);
        Assert.Equal(128, usage.UncachedInputTokens);
    }

    [Fact]
    public void DeepSeek_cache_hit_tokens_are_cached_reads_and_the_misses_the_uncached_rest()
    {
        var usage = ReadUsage("""{"prompt_tokens":1000,"completion_tokens":5,"total_tokens":1005,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":360}""");

        Assert.Equal(new Usage(1000, 640, 0, 0, 5), usage);
        Assert.Equal(360, usage.UncachedInputTokens);
    }

    [Fact]
    public void When_both_cached_tokens_and_cache_hit_tokens_are_reported_the_larger_counts()
    {
        Assert.Equal(640, ReadUsage("""{"prompt_tokens":1000,"prompt_cache_hit_tokens":640,"prompt_tokens_details":{"cached_tokens":128}}""").CachedReadTokens);
        Assert.Equal(640, ReadUsage("""{"prompt_tokens":1000,"prompt_cache_hit_tokens":128,"prompt_tokens_details":{"cached_tokens":640}}""").CachedReadTokens);
    }

    [Theory]
    [InlineData("""{"prompt_tokens":"12","completion_tokens":3}""")] // a string is not a count
    [InlineData("""{"prompt_tokens":3000000000,"completion_tokens":3}""")] // beyond int
    [InlineData("""{"prompt_tokens":1.5,"completion_tokens":3}""")]
    [InlineData("""{"completion_tokens":3,"prompt_tokens_details":null}""")]
    public void A_count_that_is_missing_or_not_an_int_reads_as_zero(string usageJson)
    {
        Assert.Equal(new Usage(0, 0, 0, 0, 3), ReadUsage(usageJson));
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("\"usage\"")]
    [InlineData("42")]
    public void A_usage_that_is_not_an_object_is_empty(string usageJson)
    {
        Assert.Equal(default, ReadUsage(usageJson));
    }

    [Fact]
    public void A_response_is_read_from_its_usage_object()
    {
        var usage = ReadResponse("""{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}""");

        Assert.Equal(new Usage(9, 4, 0, 0, 2), usage);
    }

    [Theory]
    [InlineData("""{"id":"chatcmpl-1","choices":[]}""")]
    [InlineData("""{"id":"chatcmpl-1","usage":null}""")]
    [InlineData("""{"id":"chatcmpl-1","usage":[{"prompt_tokens":9}]}""")]
    [InlineData("""[{"usage":{"prompt_tokens":9}}]""")]
    [InlineData("null")]
    public void A_response_without_a_usage_object_is_empty(string responseJson)
    {
        var usage = ReadResponse(responseJson);

        Assert.Equal(default, usage);
        Assert.True(usage.IsEmpty);
    }

    [Fact]
    public void A_body_is_read_from_its_top_level_usage_object_only()
    {
        var body = """{"choices":[{"index":0,"usage":{"prompt_tokens":1}}],"usage":{"prompt_tokens":9,"completion_tokens":2,"prompt_cache_hit_tokens":8}}"""u8;

        Assert.True(Reader.TryRead(body, out var usage));
        Assert.Equal(new Usage(9, 8, 0, 0, 2), usage);
    }

    [Theory]
    [InlineData("""{"id":"x","choices":[]}""")]
    [InlineData("""{"id":"x","usage":null}""")]
    [InlineData("""{"id":"x","choices":[{"usage":{"prompt_tokens":1,"completion_tokens":1}}]}""")]
    public void A_valid_body_without_usage_reads_as_empty(string body)
    {
        Assert.True(Reader.TryRead(Encoding.UTF8.GetBytes(body), out var usage));
        Assert.True(usage.IsEmpty);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("""[{"usage":{"prompt_tokens":9}}]""")]
    [InlineData("""{"id":"x","choices":[""")] // cut short
    public void A_body_that_is_not_one_json_object_is_not_read(string body)
    {
        Assert.False(Reader.TryRead(Encoding.UTF8.GetBytes(body), out var usage));
        Assert.Equal(default, usage);
    }

    [Theory]
    [InlineData("""{"usage":{"prompt_tokens":9,"completion_tokens":2},"choices":[""")] // cut short
    [InlineData("""{"usage":{"prompt_tokens":9,"completion_tokens":2}} trailing""")]
    public void A_usage_object_read_before_the_body_turns_out_invalid_is_kept(string body)
    {
        // The pump fails such a response (502) but still meters the usage it saw.
        Assert.False(Reader.TryRead(Encoding.UTF8.GetBytes(body), out var usage));
        Assert.Equal(new Usage(9, 0, 0, 0, 2), usage);
    }

    [Fact]
    public void The_responses_api_usage_is_read_from_input_and_output_tokens()
    {
        using var doc = JsonDocument.Parse("""{"input_tokens":500,"input_tokens_details":{"cached_tokens":384},"output_tokens":20,"total_tokens":520}""");

        Assert.True(Reader.TryReadResponsesApi(doc.RootElement, out var usage));
        Assert.Equal(new Usage(500, 384, 0, 0, 20), usage);
    }

    [Theory]
    [InlineData("""{"prompt_tokens":9,"completion_tokens":2}""")]
    [InlineData("""{"prompt_tokens":9,"input_tokens":9}""")] // prompt_tokens says it is the chat shape
    [InlineData("""{"output_tokens":2}""")]
    [InlineData("null")]
    public void Usage_not_in_the_responses_api_shape_is_left_to_the_chat_reader(string usageJson)
    {
        using var doc = JsonDocument.Parse(usageJson);

        Assert.False(Reader.TryReadResponsesApi(doc.RootElement, out var usage));
        Assert.Equal(default, usage);
    }

    [Fact]
    public void The_OpenAI_and_DeepSeek_adapters_read_usage_with_it()
    {
        Assert.Same(Reader, new OpenAIAdapter().Usage);
        Assert.Same(Reader, new DeepSeekAdapter().Usage);
    }
}
