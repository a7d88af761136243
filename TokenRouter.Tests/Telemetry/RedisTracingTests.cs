using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// Aspire's Redis client traces every command by itself (a profiling session, an Activity with tags and events per
/// command). With nothing to export them to, the gateway does not let it: ~1.5 KB and several µs per request.
/// </summary>
public sealed class RedisTracingTests
{
    [Fact]
    public async Task Without_an_OTLP_endpoint_Redis_commands_are_not_traced()
    {
        // Aspire's client registers a tracer provider for its Redis instrumentation unless told not to; the gateway's
        // own tracing is only set up with an OTLP endpoint. So no tracer provider at all means nothing is traced.
        var redis = await RedisServer.GetSharedAsync();
        using var gateway = new GatewayFactory(new Dictionary<string, string?> { ["ConnectionStrings:redis"] = redis.ConnectionString });

        Assert.Null(gateway.Services.GetService<TracerProvider>());
    }
}
