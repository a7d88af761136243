using Microsoft.AspNetCore.Components;

namespace TokenRouter.Admin.Console;

/// <summary>Base of the console's pages: statically rendered per request, with the request at hand.</summary>
public abstract class ConsolePage : ComponentBase
{
    [CascadingParameter] protected HttpContext HttpContext { get; set; } = default!;

    /// <summary>Cancelled when the browser goes away.</summary>
    protected CancellationToken Aborted => HttpContext.RequestAborted;

    protected bool IsPost => HttpMethods.IsPost(HttpContext.Request.Method);

    /// <summary>Answers with a status code other than 200 (the page still renders its explanation).</summary>
    protected void SetStatus(int statusCode)
    {
        if (!HttpContext.Response.HasStarted)
        {
            HttpContext.Response.StatusCode = statusCode;
        }
    }
}
