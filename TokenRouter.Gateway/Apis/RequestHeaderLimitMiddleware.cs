using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Apis;

/// <summary>
/// Refuses a request whose headers total more than <see cref="GatewayOptions.MaxRequestHeadersBytes"/> with 431 in the
/// client's API shape (OpenAI or Anthropic error). Kestrel's own limit sits above it (<see cref="KestrelCeiling"/>):
/// only headers beyond that get Kestrel's bodiless 431, before any gateway code runs.
/// </summary>
public sealed class RequestHeaderLimitMiddleware(RequestDelegate next, IOptionsMonitor<GatewayOptions> options)
{
    /// <summary>The largest configurable limit (Kestrel's ceiling must stay a sane allocation bound).</summary>
    public const int MaxConfigurable = 1024 * 1024;

    /// <summary>Kestrel's limit for a configured one: twice it, so moderately oversized headers reach this middleware.</summary>
    public static int KestrelCeiling(int limit) => (int)Math.Min(int.MaxValue, 2L * Math.Max(limit, 1024) + 8 * 1024);

    public Task InvokeAsync(HttpContext context)
    {
        var limit = options.CurrentValue.MaxRequestHeadersBytes;
        var size = HeaderBytes(context.Request.Headers);
        if (size <= limit) return next(context);
        return new ApiErrorResult(ApiError.HeadersTooLarge(size, limit), ClientFormat.Of(context.Request)).ExecuteAsync(context);
    }

    /// <summary>Names and values as they stand on the wire (<c>name: value\r\n</c>), as Kestrel counts them.</summary>
    private static long HeaderBytes(IHeaderDictionary headers)
    {
        long size = 0;
        foreach (var (name, values) in headers)
        {
            foreach (var value in values) size += name.Length + (value?.Length ?? 0) + 4;
        }
        return size;
    }
}
