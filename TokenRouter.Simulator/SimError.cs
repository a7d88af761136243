using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>A provider error; <see cref="Type"/> is the provider's error type string (same name in both shapes for 400s).</summary>
internal sealed record SimError(int Status, string Type, string Message, string? Param = null, string? Code = null)
{
    public static SimError InvalidRequest(string message, string? param = null) =>
        new(StatusCodes.Status400BadRequest, "invalid_request_error", message, param);

    public static SimError MalformedJson(SimFormat format) => format == SimFormat.Anthropic
        ? InvalidRequest("There was an error parsing the body of your request. The request body must be valid JSON.")
        : InvalidRequest("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The API expects a JSON payload.)");

    /// <summary>The error a provider returns for <paramref name="status"/> (used by <c>x-sim-fail-status</c>).</summary>
    public static SimError ForStatus(SimFormat format, int status)
    {
        var message = $"Simulated upstream failure with status {status}.";
        if (format == SimFormat.Anthropic)
        {
            var type = status switch
            {
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                504 => "timeout_error",
                529 => "overloaded_error",
                >= 500 => "api_error",
                _ => "invalid_request_error",
            };
            return new SimError(status, type, message);
        }

        return status switch
        {
            401 => new SimError(status, "invalid_request_error", message, Code: "invalid_api_key"),
            404 => new SimError(status, "invalid_request_error", message, Code: "model_not_found"),
            429 => new SimError(status, "requests", message, Code: "rate_limit_exceeded"),
            >= 500 => new SimError(status, "server_error", message),
            _ => new SimError(status, "invalid_request_error", message),
        };
    }

    /// <summary>OpenAI/DeepSeek: <c>{"error":{message,type,param,code}}</c>; Anthropic: <c>{"type":"error","error":{type,message},"request_id"}</c>.</summary>
    public void WriteTo(Utf8JsonWriter writer, SimFormat format)
    {
        writer.WriteStartObject();
        if (format == SimFormat.Anthropic)
        {
            writer.WriteString("type", "error");
            writer.WriteStartObject("error");
            writer.WriteString("type", Type);
            writer.WriteString("message", Message);
            writer.WriteEndObject();
            writer.WriteString("request_id", SimIds.New("req_sim"));
        }
        else
        {
            writer.WriteStartObject("error");
            writer.WriteString("message", Message);
            writer.WriteString("type", Type);
            writer.WriteString("param", Param);
            writer.WriteString("code", Code);
            writer.WriteEndObject();
        }

        writer.WriteEndObject();
    }
}

internal static class SimIds
{
    // Ids are unique per call like a provider's; only reply content is deterministic.
    public static string New(string prefix) => $"{prefix}{Random.Shared.NextInt64():x16}{Random.Shared.Next():x8}";
}
