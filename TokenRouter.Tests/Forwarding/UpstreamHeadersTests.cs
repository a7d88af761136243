using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Tests.Forwarding;

public sealed class UpstreamHeadersTests
{
    [Theory]
    [InlineData("application/json", "application/json")]
    [InlineData("text/event-stream; charset=utf-8", "text/event-stream")]
    [InlineData("Text/Event-Stream ;charset=UTF-8", "Text/Event-Stream")]
    [InlineData(" ; charset=utf-8", null)]
    public void A_responses_media_type_is_its_content_type_without_parameters(string contentType, string? expected)
    {
        using var content = new ByteArrayContent([]);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);

        Assert.Equal(expected, UpstreamHeaders.MediaType(content));
    }

    [Fact]
    public void A_response_without_a_content_type_has_no_media_type()
    {
        using var content = new ByteArrayContent([]);

        Assert.Null(UpstreamHeaders.MediaType(content));
    }

    [Fact]
    public void An_event_stream_is_recognised_whatever_the_case_of_its_media_type()
    {
        using var content = new ByteArrayContent([]);
        content.Headers.TryAddWithoutValidation("Content-Type", "TEXT/EVENT-STREAM; charset=utf-8");

        Assert.True(UpstreamPump.IsEventStream(UpstreamHeaders.MediaType(content)));
    }
}
