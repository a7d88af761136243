namespace TokenRouter.Gateway.Formats;

public static class ClientFormat
{
    /// <summary>The client's API format: OpenAI on <c>/v1/chat/completions</c> whatever its headers say (the endpoint
    /// names its shape); Anthropic for <c>x-api-key</c>/<c>anthropic-version</c> or a path under <c>/v1/messages</c>;
    /// OpenAI otherwise. Errors the gateway makes before it knows more are rendered in it.</summary>
    public static ApiFormat Of(HttpRequest request) =>
        !request.Path.StartsWithSegments("/v1/chat/completions", StringComparison.OrdinalIgnoreCase)
        && (request.Headers.ContainsKey("x-api-key") || request.Headers.ContainsKey("anthropic-version")
            || request.Path.StartsWithSegments("/v1/messages", StringComparison.OrdinalIgnoreCase))
            ? ApiFormat.Anthropic
            : ApiFormat.OpenAI;
}
