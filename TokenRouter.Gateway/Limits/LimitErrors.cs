using System.Globalization;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Limits;

/// <summary>
/// The 429s and their metric reasons. Codes are OpenAI's (<c>rate_limit_exceeded</c>, <c>insufficient_quota</c>) plus
/// <c>concurrency_limit_exceeded</c>; <see cref="ApiErrorResult"/> renders them in Anthropic's shape on /v1/messages.
/// </summary>
public static class LimitErrors
{
    public const string RateLimitType = "rate_limit_error";
    public const string RateLimitCode = "rate_limit_exceeded";
    public const string ConcurrencyCode = "concurrency_limit_exceeded";
    public const string QuotaCode = "insufficient_quota";

    /// <summary>Values of the <c>reason</c> label of <c>tokenrouter.rejections</c>.</summary>
    public static class Reasons
    {
        public const string GlobalConcurrency = "concurrency_global";
        public const string StreamConcurrency = "concurrency_stream";
        public const string NonStreamConcurrency = "concurrency_non_stream";
        public const string ProviderConcurrency = "concurrency_provider";
        public const string RequestsPerMinute = "rpm";
        public const string TokensPerMinute = "tpm";
        public const string Quota = "quota";
        public const string StoreUnavailable = "limits_unavailable";
    }

    public static ApiError Concurrency(string what, int limit) =>
        new(StatusCodes.Status429TooManyRequests, RateLimitType,
            string.Create(CultureInfo.InvariantCulture, $"Too many concurrent {what} requests in flight (limit {limit}). Please retry shortly."),
            ConcurrencyCode)
        {
            RetryAfterSeconds = 1,
        };

    public static ApiError RequestsPerMinute(int limit, long used, int retryAfter) =>
        new(StatusCodes.Status429TooManyRequests, RateLimitType,
            string.Create(CultureInfo.InvariantCulture,
                $"Rate limit reached for requests per minute (RPM) on this API key: Limit {limit}, Used {used}, Requested 1. Please try again in {retryAfter}s."),
            RateLimitCode)
        {
            RetryAfterSeconds = retryAfter,
        };

    public static ApiError TokensPerMinute(int limit, long used, int requested, int retryAfter) =>
        new(StatusCodes.Status429TooManyRequests, RateLimitType,
            string.Create(CultureInfo.InvariantCulture,
                $"Rate limit reached for tokens per minute (TPM) on this API key: Limit {limit}, Used {used}, Requested {requested}. Please try again in {retryAfter}s."),
            RateLimitCode)
        {
            RetryAfterSeconds = retryAfter,
        };

    public static ApiError Quota(decimal quotaUsd, long spentNanos, long reservedNanos, decimal requestUsd) =>
        new(StatusCodes.Status429TooManyRequests, QuotaCode,
            string.Create(CultureInfo.InvariantCulture,
                $"You exceeded your current quota: this API key's budget is ${quotaUsd:0.00####}, ${QuotaEstimator.FromNanos(spentNanos):0.00####} is spent and ${QuotaEstimator.FromNanos(reservedNanos):0.00####} is reserved by requests in flight; this request may cost up to ${requestUsd:0.00####}."),
            QuotaCode);

    public static ApiError StoreUnavailable(int retryAfterSeconds = 1) =>
        new(StatusCodes.Status503ServiceUnavailable, "api_error",
            "The quota store is temporarily unavailable; retry shortly.", "quota_store_unavailable")
        {
            RetryAfterSeconds = retryAfterSeconds,
        };
}
