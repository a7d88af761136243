using System.Text.Json;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>Reads a provider's error body (OpenAI or Anthropic shape) so it can be re-rendered in the client's shape.</summary>
public static class ProviderErrors
{
    /// <param name="providerKey">The key the gateway sent: a provider that echoes it in its message ("Incorrect API key
    /// provided: sk-…") must not hand it to the gateway's clients.</param>
    public static ApiError FromResponse(int status, ReadOnlySpan<byte> body, string providerName, int? retryAfterSeconds = null, string? providerKey = null)
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
        if (!string.IsNullOrEmpty(providerKey) && message.Contains(providerKey, StringComparison.Ordinal))
            message = message.Replace(providerKey, Redacted, StringComparison.Ordinal);
        type ??= status switch
        {
            400 or 404 or 413 or 422 => "invalid_request_error",
            401 or 403 => "authentication_error",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        return new ApiError(status, type, message, code) { RetryAfterSeconds = retryAfterSeconds };
    }

    public const string Redacted = "[redacted]";

    /// <summary>The body with every occurrence of the provider's key replaced by <see cref="Redacted"/> (the same array
    /// when there is none, the common case).</summary>
    public static byte[] WithoutKey(byte[] body, string? providerKey)
    {
        if (string.IsNullOrEmpty(providerKey)) return body;
        var key = System.Text.Encoding.UTF8.GetBytes(providerKey);
        if (body.AsSpan().IndexOf(key) < 0) return body;
        var redacted = "[redacted]"u8;
        using var output = new System.IO.MemoryStream(body.Length);
        var rest = body.AsSpan();
        for (var at = rest.IndexOf(key); at >= 0; at = rest.IndexOf(key))
        {
            output.Write(rest[..at]);
            output.Write(redacted);
            rest = rest[(at + key.Length)..];
        }
        output.Write(rest);
        return output.ToArray();
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
