using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Apis;

/// <summary>
/// The gateway's own POST endpoints answer every other method with 405 in the client's shape. Without this the
/// passthrough catch-all would match <c>GET /v1/chat/completions</c> and send it to the provider.
/// </summary>
internal static class PostOnlyEndpoints
{
    private static readonly string[] OtherMethods = ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

    public static void MapOtherMethodsNotAllowed(this RouteGroupBuilder group, string pattern, ApiFormat format) =>
        group.MapMethods(pattern, OtherMethods, (HttpContext context) =>
            {
                context.Response.Headers.Allow = "POST";
                return new ApiErrorResult(new ApiError(StatusCodes.Status405MethodNotAllowed, "invalid_request_error",
                    $"{context.Request.Method} is not allowed here; this endpoint takes POST.", "method_not_allowed"), format);
            })
            .AllowAnonymous() // the method is wrong whoever asks
            .ExcludeFromDescription();
}
