using System.Globalization;
using TokenRouter.Contracts;
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
        public const string TeamBudget = "team_budget";
        public const string ModelNotAllowed = "model_not_allowed";
        public const string StoreUnavailable = "limits_unavailable";
    }

    public static ApiError Concurrency(string what, int limit) =>
        new(StatusCodes.Status429TooManyRequests, RateLimitType,
            string.Create(CultureInfo.InvariantCulture, $"Too many concurrent {what} requests in flight (limit {limit}). Please retry shortly."),
            ConcurrencyCode)
        {
            RetryAfterSeconds = 1,
        };

    public static ApiError RequestsPerMinute(int limit, long used, int retryAfter, string? team = null) =>
        new(StatusCodes.Status429TooManyRequests, RateLimitType,
            string.Create(CultureInfo.InvariantCulture,
                $"Rate limit reached for requests per minute (RPM) on {Whose(team)}: Limit {limit}, Used {used}, Requested 1. Please try again in {retryAfter}s."),
            RateLimitCode)
        {
            RetryAfterSeconds = retryAfter,
        };

    public static ApiError TokensPerMinute(int limit, long used, int requested, int retryAfter, string? team = null) =>
        new(StatusCodes.Status429TooManyRequests, RateLimitType,
            string.Create(CultureInfo.InvariantCulture,
                $"Rate limit reached for tokens per minute (TPM) on {Whose(team)}: Limit {limit}, Used {used}, Requested {requested}. Please try again in {retryAfter}s."),
            RateLimitCode)
        {
            RetryAfterSeconds = retryAfter,
        };

    private static string Whose(string? team) => team is null ? "this API key" : $"the team '{team}' of this API key";

    public static ApiError Quota(decimal quotaUsd, long spentNanos, long reservedNanos, decimal requestUsd,
        BudgetPeriod? period = null, DateTimeOffset now = default) =>
        new(StatusCodes.Status429TooManyRequests, QuotaCode,
            string.Create(CultureInfo.InvariantCulture,
                $"You exceeded your current quota: this API key's budget is ${quotaUsd:0.00####}{Per(period)}, ${QuotaEstimator.FromNanos(spentNanos):0.00####} is spent and ${QuotaEstimator.FromNanos(reservedNanos):0.00####} is reserved by requests in flight; this request may cost up to ${requestUsd:0.00####}.{Resets(period, now)}"),
            QuotaCode);

    /// <summary>The key's team has spent its budget (for this period): the same 429 <c>insufficient_quota</c> as a key's own.</summary>
    public static ApiError TeamBudget(string team, decimal budgetUsd, long spentNanos, long reservedNanos, decimal requestUsd,
        BudgetPeriod? period, DateTimeOffset now) =>
        new(StatusCodes.Status429TooManyRequests, QuotaCode,
            string.Create(CultureInfo.InvariantCulture,
                $"You exceeded your team's quota: the budget of team '{team}' is ${budgetUsd:0.00####}{Per(period)}, ${QuotaEstimator.FromNanos(spentNanos):0.00####} is spent and ${QuotaEstimator.FromNanos(reservedNanos):0.00####} is reserved by requests in flight; this request may cost up to ${requestUsd:0.00####}.{Resets(period, now)}"),
            QuotaCode);

    private static string Per(BudgetPeriod? period) => period is { } p
        ? string.Create(CultureInfo.InvariantCulture, $" for the period that started {p.Start.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}")
        : "";

    private static string Resets(BudgetPeriod? period, DateTimeOffset now)
    {
        if (period is not { } p) return "";
        var seconds = Math.Max(1, (long)Math.Ceiling((p.End - now).TotalSeconds));
        return string.Create(CultureInfo.InvariantCulture, $" The budget resets at {p.End.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'} (in {seconds}s).");
    }

    /// <summary>403 before anything is sent: the model is not in the key's or its team's allow-list.</summary>
    public static ApiError ModelNotAllowed(string model, string whose) =>
        new(StatusCodes.Status403Forbidden, "permission_error",
            $"The model '{model}' is not allowed for {whose}. Ask your administrator to add it to the allowed models.",
            "model_not_allowed", "model");

    public static ApiError StoreUnavailable(int retryAfterSeconds = 1) =>
        new(StatusCodes.Status503ServiceUnavailable, "api_error",
            "The quota store is temporarily unavailable; retry shortly.", "quota_store_unavailable")
        {
            RetryAfterSeconds = retryAfterSeconds,
        };
}
