using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.StackExchangeRedis;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;
using StackExchange.Redis;
using TokenRouter.Admin.Alerts;
using TokenRouter.Admin.Apis;
using TokenRouter.Admin.Auth;
using TokenRouter.Admin.Configuration;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.Hosting;
using TokenRouter.Admin.KeySync;
using TokenRouter.Admin.Ledger;
using TokenRouter.Admin.Pricing;
using TokenRouter.Admin.Providers;
using TokenRouter.Admin.Quotas;
using TokenRouter.Admin.Security;
using TokenRouter.Contracts;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wires the Admin control plane: Postgres, Redis, admin-key auth, key and price sync, the usage ledger, the <c>/admin</c> API and the web console.</summary>
public static class AdminExtensions
{
    public static TBuilder AddAdminServices<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // DATABASE_URL / REDIS_URL become ConnectionStrings:* before the Aspire clients read them.
        if (builder.Configuration is IConfigurationManager manager)
        {
            manager.AddSeedConnectionAliases();
        }

        builder.AddNpgsqlDbContext<AdminDbContext>(SeedConnectionAliases.DatabaseConnectionName);
        // abortConnect=false: a Redis outage must not stop Admin; writes are queued and retried (KeySync).
        var traces = builder.ExportsTraces();
        builder.AddRedisClient(SeedConnectionAliases.RedisConnectionName, configureSettings: s => s.DisableTracing = !traces,
            configureOptions: options => options.AbortOnConnectFail = false);

        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);

        services.AddOptions<AdminAuthOptions>()
            .Configure<IConfiguration>((options, configuration) =>
                options.ApiKey = configuration[AdminAuthOptions.ConfigurationKey])
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminAuthOptions>, AdminAuthOptionsValidator>();
        services.AddOptions<AdminStartupOptions>().BindConfiguration(AdminStartupOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminStartupOptions>, AdminStartupOptionsValidator>();
        services.AddOptions<KeySyncOptions>().BindConfiguration(KeySyncOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<KeySyncOptions>, KeySyncOptionsValidator>();
        services.AddOptions<UsageLedgerOptions>().BindConfiguration(UsageLedgerOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<UsageLedgerOptions>, UsageLedgerOptionsValidator>();

        services.AddOptions<WebhookOptions>()
            .BindConfiguration(WebhookOptions.SectionName)
            .Configure<IConfiguration>(WebhookOptions.ApplyAliases)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<WebhookOptions>, WebhookOptionsValidator>();

        services.AddOptions<AdminBudgetsOptions>()
            .BindConfiguration(AdminBudgetsOptions.SectionName)
            .Configure<IConfiguration>((options, configuration) =>
            {
                if (configuration[AdminBudgetsOptions.AliasVariable] is { Length: > 0 } zone
                    && string.IsNullOrWhiteSpace(configuration[$"{AdminBudgetsOptions.SectionName}:TimeZone"]))
                {
                    options.TimeZone = zone;
                }
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminBudgetsOptions>, AdminBudgetsOptionsValidator>();
        services.TryAddSingleton(sp =>
        {
            BudgetPeriods.TryFindTimeZone(sp.GetRequiredService<IOptions<AdminBudgetsOptions>>().Value.TimeZone, out var zone);
            return new BudgetPeriods(sp.GetRequiredService<TimeProvider>(), zone ?? TimeZoneInfo.Utc);
        });

        services.AddSingleton<AdminKeyVerifier>();
        services.AddAuthentication(AdminKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, AdminKeyAuthenticationHandler>(AdminKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminKeyAuthenticationHandler.PolicyName, policy => policy
                .AddAuthenticationSchemes(AdminKeyAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser());

        // One Data Protection key ring in Redis, shared with the gateways (same application name): provider keys are
        // stored and published encrypted under it, and the console's sign-in cookie survives restarts and replicas.
        services.AddDataProtection().SetApplicationName(ProviderDeploymentContract.DataProtectionApplication);
        services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider>((options, sp) =>
            options.XmlRepository = new RedisXmlRepository(() => sp.GetRequiredService<IConnectionMultiplexer>().GetDatabase(),
                ProviderDeploymentContract.DataProtectionKeysKey));
        services.AddSingleton<ProviderKeyProtector>();
        services.AddSingleton<ProviderDeploymentPublisher>();

        services.AddScoped<DatabaseMigrator>();
        services.AddSingleton<ApiKeyRedisWriter>();
        services.AddSingleton<KeySyncQueue>();
        services.AddScoped<KeyPublisher>();
        services.AddSingleton<PriceRedisWriter>();
        services.AddScoped<PricePublisher>();
        services.AddScoped<QuotaSpendSeeder>();
        services.AddScoped<BudgetLedger>();
        services.AddScoped<UsageLedgerWriter>();
        services.AddSingleton<UsageLedgerStatus>();
        services.AddScoped<BudgetAlertDetector>();
        // Webhook secrets are encrypted with the app's key ring (shared by replicas, like the console cookie's).
        services.AddDataProtection();
        services.AddSingleton<WebhookSecretProtector>();
        // Webhooks get their own retries (Polly, persisted per attempt) and timeout, not the standard handler's: its
        // retries would send a POST again unrecorded. No redirects: a signed alert goes where it was configured to.
#pragma warning disable EXTEXP0001 // experimental, but the only way to undo ServiceDefaults' ConfigureHttpClientDefaults
        services.AddHttpClient(WebhookOptions.HttpClientName)
            .RemoveAllResilienceHandlers()
#pragma warning restore EXTEXP0001
            // The factory's request logs carry the URL, whose path is often the receiver's own secret (Slack-style URLs).
            .RemoveAllLoggers()
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false })
            .ConfigureHttpClient(client => client.Timeout = Timeout.InfiniteTimeSpan);
        // Registered before the web server's own hosted service, so migrations finish before the API serves, and
        // before the ledger consumer, so it never writes to a table that is not there yet.
        services.AddHostedService<AdminStartupService>();
        services.AddHostedService<KeySyncWorker>();
        services.AddHostedService<RedisReconnectWatcher>();
        services.AddHostedService<UsageLedgerConsumer>();
        services.AddHostedService<WebhookDeliveryWorker>();
        services.AddHostedService<ProviderDeploymentSyncWorker>();

        services.Configure<JsonOptions>(options =>
            options.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower);
        // Binding failures throw, so BadRequestExceptionHandler can explain them (default: a bare 400 outside Development).
        services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = true);
        services.AddProblemDetails();
        services.AddExceptionHandler<BadRequestExceptionHandler>();
        services.AddOpenApi(options => options.AddDocumentTransformer<AdminKeySecurityTransformer>());
        // No Server header: what runs Admin is nobody's business.
        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(options => options.AddServerHeader = false);

        // The web console under /console: its own cookie sign-in, never accepted by the /admin API.
        services.AddAdminConsole();

        return builder;
    }

    public static WebApplication MapAdminApi(this WebApplication app)
    {
        app.UseMiddleware<SecurityHeadersMiddleware>();
        app.UseExceptionHandler();
        app.UseAuthentication();
        app.UseAuthorization();

        // The API description carries no secrets, so it stays readable without the admin key.
        app.MapOpenApi();
        app.MapScalarApiReference();

        app.MapGroup("/admin")
            .RequireAuthorization(AdminKeyAuthenticationHandler.PolicyName)
            .MapApiKeysApi()
            .MapTeamsApi()
            .MapPricingApi()
            .MapUsageApi()
            .MapLedgerApi()
            .MapWebhooksApi()
            .MapProviderDeploymentsApi();

        return app;
    }
}
