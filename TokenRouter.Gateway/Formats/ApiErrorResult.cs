using System.Text.Json;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Formats;

/// <summary>Renders an <see cref="ApiError"/> as OpenAI's or Anthropic's error JSON.</summary>
public sealed class ApiErrorResult(ApiError error, ApiFormat format) : IResult, IStatusCodeHttpResult
{
    public ApiError Error { get; } = error;
    public int? StatusCode => Error.Status;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = Error.Status;
        response.ContentType = "application/json";
        if (Error.RetryAfterSeconds is { } retry)
        {
            response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return response.Body.WriteAsync(Serialize(Error, format), httpContext.RequestAborted).AsTask();
    }

    public static byte[] Serialize(ApiError error, ApiFormat format)
    {
        using var buffer = new PooledBufferWriter();
        using (var w = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions))
        {
            w.WriteStartObject();
            if (format == ApiFormat.Anthropic)
            {
                w.WriteString("type", "error");
                w.WriteStartObject("error");
                w.WriteString("type", AnthropicType(error));
                w.WriteString("message", error.Message);
                w.WriteEndObject();
            }
            else
            {
                w.WriteStartObject("error");
                w.WriteString("message", error.Message);
                w.WriteString("type", error.Type);
                if (error.Param is null) w.WriteNull("param"); else w.WriteString("param", error.Param);
                if (error.Code is null) w.WriteNull("code"); else w.WriteString("code", error.Code);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Anthropic's error types are fixed by status; map ours onto theirs.</summary>
    private static string AnthropicType(ApiError error) => error.Status switch
    {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        431 => "invalid_request_error",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
}
