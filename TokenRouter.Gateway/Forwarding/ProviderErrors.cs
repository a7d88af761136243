using System.Text.Json;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>Reads a provider's error body (OpenAI or Anthropic shape) so it can be re-rendered in the client's shape.</summary>
public static class ProviderErrors
{
    public static ApiError FromResponse(int status, ReadOnlySpan<byte> body, string providerName, int? retryAfterSeconds = null)
    {
        string? message = null, type = null, code = null;
        try
        {
            var reader = new Utf8JsonReader(body);
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.Object)
                {
                    message = Str(error, "message");
                    type = Str(error, "type");
                    code = Str(error, "code");
                }
                else if (error.ValueKind == JsonValueKind.String) message = error.GetString();
            }
        }
        catch (JsonException)
        {
            // Not JSON (an HTML error page from a proxy, say): say so without echoing it.
        }
        message ??= $"The provider '{providerName}' answered HTTP {status}.";
        type ??= status switch
        {
            400 or 404 or 413 or 422 => "invalid_request_error",
            401 or 403 => "authentication_error",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        return new ApiError(status, type, message, code) { RetryAfterSeconds = retryAfterSeconds };
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
