using System.Text.Json;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>What the gateway needs from a JSON request body: its top-level <c>model</c> (and where it sits, to
/// rewrite it), <c>stream</c> and completion cap. Everything else stays unread.</summary>
internal readonly record struct PassthroughBodyFacts(string? Model, int ModelStart, int ModelLength, bool Stream, int? MaxTokens)
{
    /// <summary>True for <c>application/json</c> and <c>*+json</c> content types (parameters ignored).</summary>
    public static bool IsJson(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType)) return false;
        var semicolon = contentType.IndexOf(';');
        return IsJsonMediaType((semicolon < 0 ? contentType : contentType[..semicolon]).Trim());
    }

    public static bool IsJsonMediaType(string? media) =>
        media is not null && (media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                              || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    public static PassthroughBodyFacts Read(ReadOnlySpan<byte> json)
    {
        if (json.Trim(" \t\r\n"u8).IsEmpty) return default;
        var reader = new Utf8JsonReader(json);
        try
        {
            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                reader.Read(); // throws on trailing data
                return default;
            }
            string? model = null;
            int start = 0, length = 0;
            var stream = false;
            int? maxTokens = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isModel = reader.ValueTextEquals("model"u8);
                var isStream = !isModel && reader.ValueTextEquals("stream"u8);
                var isMax = !isModel && !isStream && (reader.ValueTextEquals("max_tokens"u8)
                    || reader.ValueTextEquals("max_completion_tokens"u8) || reader.ValueTextEquals("max_output_tokens"u8));
                reader.Read();
                if (isModel)
                {
                    // Duplicate keys would let the gateway route and price one model while the provider runs another.
                    if (start > 0) throw ApiError.InvalidRequest("The request body names 'model' more than once.", "model");
                    start = (int)reader.TokenStartIndex;
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        model = reader.GetString();
                        length = reader.ValueSpan.Length + 2; // the raw (still escaped) value and its quotes
                    }
                }
                else if (isStream) stream = reader.TokenType == JsonTokenType.True;
                else if (isMax && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var max)) maxTokens = max;
                reader.Skip();
            }
            reader.Read(); // throws on trailing data
            return new PassthroughBodyFacts(string.IsNullOrEmpty(model) ? null : model, start, length, stream, maxTokens);
        }
        catch (JsonException ex)
        {
            throw ApiError.InvalidJson(ex.Message);
        }
    }

    /// <summary>The body with <c>model</c> set to <paramref name="upstreamModel"/>; the same bytes when it already is.</summary>
    public ReadOnlyMemory<byte> Rewrite(ReadOnlyMemory<byte> body, string? upstreamModel)
    {
        if (Model is null || upstreamModel is null || upstreamModel == Model) return body;
        var encoded = JsonEncodedText.Encode(upstreamModel).EncodedUtf8Bytes;
        var rewritten = new byte[body.Length - ModelLength + encoded.Length + 2];
        var span = body.Span;
        span[..ModelStart].CopyTo(rewritten);
        var at = ModelStart;
        rewritten[at++] = (byte)'"';
        encoded.CopyTo(rewritten.AsSpan(at));
        at += encoded.Length;
        rewritten[at++] = (byte)'"';
        span[(ModelStart + ModelLength)..].CopyTo(rewritten.AsSpan(at));
        return rewritten;
    }
}
