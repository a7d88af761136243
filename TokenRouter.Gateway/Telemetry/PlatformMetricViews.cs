using OpenTelemetry.Metrics;

namespace TokenRouter.Gateway.Telemetry;

/// <summary>
/// Platform instruments the gateway does not export. Each is recorded on every request, and each says again what a
/// gateway metric already says with better labels: the upstream call's time to headers is
/// <c>tokenrouter.upstream.ttfb</c> (by provider) and <c>tokenrouter.deployment.*</c>, its concurrency
/// <c>tokenrouter.deployment.inflight</c>, refused keys are 401s in <c>http.server.request.duration</c>. A dropped
/// instrument is never enabled, so ASP.NET Core and SocketsHttpHandler skip recording it altogether: together with the
/// second authentication below they were ~9 µs of CPU a request in the load benchmark.
/// </summary>
public static class PlatformMetricViews
{
    public static readonly string[] Dropped =
    [
        "aspnetcore.authentication.authenticate.duration",
        "aspnetcore.routing.match_attempts",
        "http.client.request.duration",
        "http.client.request.time_in_queue",
        "http.client.active_requests",
    ];

    public static IServiceCollection DropDuplicatePlatformInstruments(this IServiceCollection services) =>
        services.ConfigureOpenTelemetryMeterProvider(metrics =>
        {
            foreach (var name in Dropped) metrics.AddView(name, MetricStreamConfiguration.Drop);
        });
}
