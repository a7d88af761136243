using System.Globalization;
using Microsoft.AspNetCore.Http.Features;

namespace TokenRouter.Gateway.Telemetry;

/// <summary>
/// Puts <c>error.type</c> (the status code) on ASP.NET Core's <c>http.server.request.duration</c> for a 5xx answered
/// without an exception, as the semantic conventions ask and ASP.NET Core 10 does not do itself (it tags exceptions
/// only). OpenTelemetry's instrumentation does the same with a middleware of its own in front of every request: one more
/// async layer per request (a state machine on the heap, a resumption). The gateway does it instead in the client-key
/// middleware, which awaits every request already (<see cref="Auth.ClientKeyEndpointExtensions.UseClientKeys"/>).
/// </summary>
public static class ServerErrorTypeTags
{
    private const string ErrorType = "error.type";

    /// <summary>Removes OpenTelemetry's own middleware for this; call after the metrics are configured.</summary>
    public static IServiceCollection TagServerErrorTypesWithoutOpenTelemetryMiddleware(this IServiceCollection services)
    {
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (IsOpenTelemetryStartupFilter(services[i])) services.RemoveAt(i);
        }
        return services;
    }

    /// <summary>OpenTelemetry's only startup filter is that middleware (1.20): a test says so if another appears.</summary>
    internal static bool IsOpenTelemetryStartupFilter(ServiceDescriptor d) =>
        d.ServiceType == typeof(IStartupFilter) && d.ImplementationType?.Namespace?.StartsWith("OpenTelemetry.", StringComparison.Ordinal) == true;

    /// <summary>Tags a finished request answered with a 5xx, unless an exception handler has tagged it already.</summary>
    public static void Add(HttpContext context)
    {
        var status = context.Response.StatusCode;
        if (status is < 500 or > 599 || context.Features.Get<IHttpMetricsTagsFeature>() is not { } feature) return;
        foreach (var tag in feature.Tags)
        {
            if (tag.Key == ErrorType) return;
        }
        feature.Tags.Add(new(ErrorType, status.ToString(CultureInfo.InvariantCulture)));
    }

    /// <summary>Runs <paramref name="next"/>, then <see cref="Add"/>.</summary>
    public static Task AfterAsync(HttpContext context, RequestDelegate next)
    {
        var task = next(context);
        if (!task.IsCompletedSuccessfully) return AwaitThenAddAsync(task, context);
        Add(context);
        return Task.CompletedTask;

        static async Task AwaitThenAddAsync(Task task, HttpContext context)
        {
            await task;
            Add(context);
        }
    }
}
