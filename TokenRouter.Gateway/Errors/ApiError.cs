namespace TokenRouter.Gateway.Errors;

/// <summary>
/// A client-facing error. Thrown by parsing and routing code and rendered in the client's own API format by
/// <c>Formats.ApiErrorResult</c>; never carries a stack trace or a secret to the client.
/// </summary>
public sealed class ApiError(int status, string type, string message, string? code = null, string? param = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Code { get; } = code;
    public string? Param { get; } = param;

    /// <summary>Seconds for a <c>Retry-After</c> header (rate and concurrency limits).</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>
    /// The same error about a field of a nested element, named from one level up: the request readers throw with paths
    /// relative to the element they read (".role") and each enclosing reader puts the element's own path in front
    /// ("messages[3]"), so no path string is built for a request that is fine. The message names the field first —
    /// <c>'field' …</c> or <c>field: …</c> — which is where the prefix goes.
    /// </summary>
    public ApiError UnderParam(string prefix)
    {
        if (Param is null) return this;
        var message = Message.StartsWith('\'') ? "'" + prefix + Message[1..] : prefix + Message;
        return new ApiError(Status, Type, message, Code, prefix + Param) { RetryAfterSeconds = RetryAfterSeconds };
    }

    public static ApiError InvalidRequest(string message, string? param = null) =>
        new(StatusCodes.Status400BadRequest, "invalid_request_error", message, null, param);

    public static ApiError InvalidJson(string detail) =>
        new(StatusCodes.Status400BadRequest, "invalid_request_error", $"The request body is not valid JSON: {detail}", "invalid_json");

    public static ApiError Unauthorized(string message) =>
        new(StatusCodes.Status401Unauthorized, "authentication_error", message, "invalid_api_key");

    public static ApiError ModelNotFound(string model) =>
        new(StatusCodes.Status404NotFound, "invalid_request_error", $"The model '{model}' does not exist or is not routable.", "model_not_found", "model");

    public static ApiError BodyTooLarge(long limit) =>
        new(StatusCodes.Status413PayloadTooLarge, "invalid_request_error", $"The request body exceeds the limit of {limit} bytes.", "request_too_large");

    public static ApiError HeadersTooLarge(long size, long limit) =>
        new(StatusCodes.Status431RequestHeaderFieldsTooLarge, "invalid_request_error",
            $"The request headers total {size} bytes, over the limit of {limit} bytes.", "request_headers_too_large");

    public static ApiError BadGateway(string message) =>
        new(StatusCodes.Status502BadGateway, "api_error", message, "upstream_error");

    /// <summary>The provider's last deployment was removed (through Admin) between routing and sending.</summary>
    public static ApiError NoDeployment(string provider) =>
        new(StatusCodes.Status503ServiceUnavailable, "api_error", $"The provider '{provider}' has no deployment right now.", "provider_not_configured")
        {
            RetryAfterSeconds = 1,
        };

    /// <summary>The code of both answers below: every deployment of the provider is saturated, nothing was sent.</summary>
    public const string DeploymentsSaturatedCode = "deployments_saturated";

    /// <summary>Every deployment of the provider is at its concurrency cap (or else saturated): a slot may free any moment.</summary>
    public static ApiError DeploymentsBusy(string provider) =>
        new(StatusCodes.Status429TooManyRequests, "rate_limit_error",
            $"Every deployment of provider '{provider}' is at its limit of concurrent requests (or of requests or tokens per minute). Please retry shortly.",
            DeploymentsSaturatedCode)
        {
            RetryAfterSeconds = 1,
        };

    /// <summary>Every deployment of the provider is at its own RPM/TPM: come back when the minute window ends.</summary>
    public static ApiError DeploymentsAtRateLimit(string provider, int retryAfterSeconds) =>
        new(StatusCodes.Status429TooManyRequests, "rate_limit_error",
            $"Every deployment of provider '{provider}' is at its requests- or tokens-per-minute limit. Please retry shortly.",
            DeploymentsSaturatedCode)
        {
            RetryAfterSeconds = retryAfterSeconds,
        };

    public static ApiError GatewayTimeout(string message) =>
        new(StatusCodes.Status504GatewayTimeout, "timeout_error", message, "upstream_timeout");
}
