namespace TokenRouter.Admin.Security;

/// <summary>
/// Browser-facing hardening for every Admin response (API, OpenAPI document, the API reference page, errors): no MIME
/// sniffing, never framed (clickjacking of an authenticated console), no referrer leaving the page. Set when the response
/// starts, so responses rewritten by the exception handler carry them too. Kestrel's <c>Server</c> header is switched
/// off where Admin composes its services.
/// </summary>
public sealed class SecurityHeadersMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnStarting(static state =>
        {
            var headers = ((HttpContext)state).Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            // frame-ancestors only: the API reference page (Scalar) loads its own scripts and styles.
            if (!headers.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.ContentSecurityPolicy))
                headers.ContentSecurityPolicy = "frame-ancestors 'none'";
            headers["Referrer-Policy"] = "no-referrer";
            headers.Remove(Microsoft.Net.Http.Headers.HeaderNames.Server);
            headers.XPoweredBy = default;
            return Task.CompletedTask;
        }, context);
        return next(context);
    }
}
