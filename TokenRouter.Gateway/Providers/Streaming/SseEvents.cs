namespace TokenRouter.Gateway.Providers.Streaming;

/// <summary>Checks on an upstream event's data shared by the stream readers.</summary>
internal static class SseEvents
{
    /// <summary>What the client is told of an upstream event that is not JSON, as an OpenAI error object.</summary>
    public static ReadOnlySpan<byte> NotJsonErrorObject =>
        """{"type":"api_error","message":"The provider sent a stream event that is not valid JSON."}"""u8;

    /// <summary>The same as an Anthropic <c>error</c> event's data.</summary>
    public static ReadOnlySpan<byte> NotJsonErrorEvent =>
        """{"type":"error","error":{"type":"api_error","message":"The provider sent a stream event that is not valid JSON."}}"""u8;

    /// <summary>Whether the data looks like one JSON object: every event OpenAI and Anthropic send is one (the JSON
    /// itself is validated where it is read). Two byte checks, so it costs nothing per chunk.</summary>
    public static bool IsJsonObject(ReadOnlySpan<byte> data)
    {
        data = data.Trim(" \t\r\n"u8);
        return data.Length >= 2 && data[0] == (byte)'{' && data[^1] == (byte)'}';
    }
}
