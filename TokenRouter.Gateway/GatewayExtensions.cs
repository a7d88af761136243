using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.StackExchangeRedis;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Apis;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Metering;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Resilience;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;
using TokenRouter.Gateway.Vendors;

namespace Microsoft.Extensions.Hosting;

public static class GatewayExtensions
{
    /// <summary>Registers the data plane. With <c>ConnectionStrings:redis</c> (or <c>REDIS_URL</c>) keys, limits and usage go
    /// through Redis; without it the gateway runs on its embedded in-memory default.</summary>
    public static TBuilder AddGatewayServices<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        SeedConfigurationAliases.Apply(builder.Configuration);
        var services = builder.Services;

        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddOptions<ProvidersOptions>().BindConfiguration(ProvidersOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ProvidersOptions>, ProvidersOptionsValidator>();
        services.AddOptions<ProxyOptions>().BindConfiguration(ProxyOptions.SectionName).ValidateOnStart();
        services.AddOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>()
            .Configure<IOptions<GatewayOptions>>((kestrel, gateway) =>
            {
                kestrel.Limits.MaxRequestBodySize = gateway.Value.MaxRequestBodyBytes + 1;
                // Kestrel's own header limit answers with a bodiless 431 before any gateway code runs: it is set above the
                // configured limit, which RequestHeaderLimitMiddleware enforces with a 431 in the client's shape.
                kestrel.Limits.MaxRequestHeadersTotalSize = RequestHeaderLimitMiddleware.KestrelCeiling(gateway.Value.MaxRequestHeadersBytes);
                // Bytes that are not UTF-8 in a header would be Kestrel's bodiless 400; read as Latin-1, they reach the
                // gateway, which refuses any header it must forward that is not printable ASCII, in the client's shape.
                kestrel.RequestHeaderEncodingSelector = _ => System.Text.Encoding.Latin1;
            });
        services.AddOptions<RoutingOptions>().BindConfiguration(RoutingOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RoutingOptions>, RoutingOptionsValidator>();
        services.AddSingleton<IValidateOptions<RoutingOptions>, ModelGroupRoutesValidator>();
        services.AddOptions<PricingOptions>().BindConfiguration(PricingOptions.SectionName).ValidateOnStart();

        var redis = !string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString("redis"));
        if (redis)
        {
            // Redis replies complete on the .NET thread pool instead of StackExchange.Redis's own reader threads: one
            // thread hop less per round trip (see the README's Redis scale-out numbers). Its per-command spans (a
            // profiling session, an Activity with tags and events per command: ~1.5 KB per request) only when exported.
            var traces = builder.ExportsTraces();
            builder.AddRedisClient("redis", configureSettings: s => s.DisableTracing = !traces,
                configureOptions: o => o.SocketManager = SocketManager.ThreadPool);
            services.AddRedisDedupBroker();
            services.AddSingleton<RedisPriceOverrides>();
            services.AddHostedService(sp => sp.GetRequiredService<RedisPriceOverrides>());
            // Deployments Admin manages: their keys arrive encrypted under the Data Protection key ring Admin shares in Redis.
            services.AddDataProtection().SetApplicationName(ProviderDeploymentContract.DataProtectionApplication);
            services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider>((options, sp) =>
                options.XmlRepository = new RedisXmlRepository(() => sp.GetRequiredService<IConnectionMultiplexer>().GetDatabase(),
                    ProviderDeploymentContract.DataProtectionKeysKey));
            services.AddSingleton<RedisProviderDeployments>();
            services.AddHostedService(sp => sp.GetRequiredService<RedisProviderDeployments>());
            services.AddHostedService(sp => new RedisDeploymentCooldowns(sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<DeploymentHealth>(),
                () => [.. sp.GetRequiredService<ModelRouter>().Providers.SelectMany(p => p.Deployments).Select(d => d.Id)],
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<RedisDeploymentCooldowns>>()));
            services.AddHostedService(sp => new RedisDeploymentPublisher(sp.GetRequiredService<IConnectionMultiplexer>(),
                sp.GetRequiredService<DeploymentHealth>(),
                () => [.. sp.GetRequiredService<ModelRouter>().Providers.SelectMany(p => p.Deployments)
                    .Select(d => new DeploymentDescription(d.Id, d.Provider.Name, d.Info.Weight, d.Info.CacheGroup, d.Rpm, d.Tpm, d.MaxConcurrency))],
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<RedisDeploymentPublisher>>()));
        }

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(sp => new ApiKeyAuthenticator(
            sp.GetRequiredService<IOptions<GatewayOptions>>(), sp.GetRequiredService<ILogger<ApiKeyAuthenticator>>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetService<IConnectionMultiplexer>(),
            redis ? sp.GetRequiredService<RedisCircuit>() : null, sp.GetRequiredService<GatewayMetrics>()));
        // Drain on SIGTERM: Kestrel lets requests in flight finish for this long, then the usage sink flushes.
        services.AddOptions<HostOptions>().Configure<IOptions<GatewayOptions>>((host, gateway) => host.ShutdownTimeout = gateway.Value.ShutdownTimeout);
        services.AddClientKeyAuthentication();
        services.AddSingleton<ModelRouter>();
        services.AddSingleton<Canonicalizer>();
        services.AddSingleton(sp => new ToolOrderMemory(sp.GetRequiredService<TimeProvider>(), sp.GetService<IConnectionMultiplexer>())
        {
            Ttl = sp.GetRequiredService<IOptions<GatewayOptions>>().Value.ToolOrderMemoryTtl,
        });
        services.AddSingleton<Arranger>();
        services.AddSingleton<OutboundAdapters>();
        services.AddSingleton<RequestPipeline>();
        services.AddSingleton<ProviderHttpClient>();
        services.AddSingleton<PriceTable>();
        services.AddSingleton<InMemoryUsageSink>();
        services.AddSingleton<IUsageSink>(sp => sp.GetRequiredService<InMemoryUsageSink>());
        services.AddSingleton<SelfAddress>();
        services.AddSingleton<InflightRegistry>();
        services.AddSingleton<ModelLabels>();
        services.AddSingleton<UnpricedModelLog>();
        services.AddSingleton<GatewayMetrics>();
        services.DropDuplicatePlatformInstruments();
        services.TagServerErrorTypesWithoutOpenTelemetryMiddleware();
        services.AddSingleton<UsageMeter>();
        // Conversations stay on the deployment whose provider cache is warm (WeightedOrderBalancer is the stateless
        // alternative, rendezvous on the prefix hash alone).
        services.AddCacheAwareBalancing();
        services.AddSingleton<DeploymentHealth>();
        services.AddSingleton<DeploymentRateLimiter>();
        services.AddSingleton<DeploymentConcurrencyLimiter>();
        services.AddSingleton<UpstreamFailover>();
        services.AddSingleton<UpstreamPump>();
        services.AddSingleton<ClientDelivery>();
        services.AddSingleton<DedupCoordinator>();
        services.AddSingleton<ChatHandler>();
        services.AddHttpForwarder();
        services.AddSingleton<PassthroughForwarder>();

        services.AddGatewayLimits();
        if (redis) services.AddRedisUsageSink();

        services.AddSimulator(builder.Configuration);
        services.Configure<JsonOptions>(o => o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        return builder;
    }

    public static WebApplication MapGatewayApi(this WebApplication app)
    {
        // Last line of defence: nothing reaches a client as a stack trace.
        app.UseExceptionHandler(errorApp => errorApp.Run(async context =>
        {
            var error = context.Features.Get<IExceptionHandlerFeature>()?.Error;
            var apiError = error is BadHttpRequestException bad
                ? new ApiError(bad.StatusCode, "invalid_request_error", bad.Message)
                : new ApiError(StatusCodes.Status500InternalServerError, "api_error", "The gateway failed to process the request.");
            await new ApiErrorResult(apiError, ClientFormat.Of(context.Request)).ExecuteAsync(context);
        }));
        app.UseMiddleware<RequestHeaderLimitMiddleware>();
        // Kestrel has already decoded the path and removed its dot segments; the client's own path is checked here.
        app.Use((context, next) => PassthroughPath.RawTargetIsSafe(context)
            ? next(context)
            : new ApiErrorResult(PassthroughPath.Refused(), ClientFormat.Of(context.Request)).ExecuteAsync(context));
        // A bodiless error of the framework's own (404 for a path nothing maps, say) gets the client's error shape too.
        // Kestrel's 400/431 for a malformed request line or oversized headers are written before any middleware runs.
        // Endpoints that always answer with a body (chat, messages) skip the middleware altogether, not just its rewrite:
        // its feature, items and state machine cost ~0.35 KB a request (README, "Allocation per request").
        app.UseWhen(static context => context.GetEndpoint()?.Metadata.GetMetadata<ISkipStatusCodePagesMetadata>() is null, branch => branch.UseStatusCodePages(context =>
        {
            var http = context.HttpContext;
            if (http.Request.Path.StartsWithSegments("/sim")) return Task.CompletedTask; // a provider's answers stay its own
            var status = http.Response.StatusCode;
            var error = new ApiError(status, status == StatusCodes.Status404NotFound ? "invalid_request_error" : "api_error",
                status == StatusCodes.Status404NotFound ? $"The gateway has no endpoint for {http.Request.Method} at this path." : $"The request failed with HTTP {status}.",
                status == StatusCodes.Status404NotFound ? "not_found" : null);
            return new ApiErrorResult(error, ClientFormat.Of(http.Request)).ExecuteAsync(http);
        }));

        app.UseClientKeys();

        var v1 = app.MapGroup("/v1").RequireClientKey();
        v1.MapChatCompletionsApi();
        v1.MapMessagesApi();
        v1.MapModelsApi();
        v1.MapDeploymentsApi();
        v1.MapPassthroughApi();
        app.MapSimulator();

        app.Lifetime.ApplicationStarted.Register(() => LogStartup(app));
        return app;
    }

    private static void LogStartup(WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("TokenRouter.Gateway");
        var router = app.Services.GetRequiredService<ModelRouter>();
        // Built now, not at the first request: in embedded mode it generates and shows the newcomer's key.
        app.Services.GetRequiredService<ApiKeyAuthenticator>();
        var health = app.Services.GetRequiredService<DeploymentHealth>();
        foreach (var d in router.Providers.SelectMany(p => p.Deployments)) health.Register(d.Provider.Name, d.Id);
        var redis = app.Services.GetService<IConnectionMultiplexer>() is not null;
        logger.LogInformation("TokenRouter gateway ready: mode={Mode}; providers: {Providers}",
            redis ? "redis (keys from Admin + TOKENROUTER_API_KEYS)" : "embedded (in-memory; keys from TOKENROUTER_API_KEYS)",
            string.Join(", ", router.Providers.Select(p => p.Name)));
    }
}
