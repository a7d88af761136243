using TokenRouter.AppHost;
using TokenRouter.AppHost.Infrastructure;
using TokenRouter.AppHost.Monitoring;

var builder = DistributedApplication.CreateBuilder(args);

// Containers, local postgres/redis-server processes, or nothing: decided (and logged) in one place.
var infrastructure = builder.AddTokenRouterInfrastructure();

var gateway = builder.AddProject<Projects.TokenRouter_Gateway>("gateway")
    .WithDefaultHttpEndpoint()
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health")
    .WithGatewayEnvironment(builder);

if (infrastructure.Redis is { } redis)
{
    gateway.WithReference(redis).WaitFor(redis);
}

// Admin owns the Postgres schema, so it exists only where there is a database.
IResourceBuilder<ProjectResource>? admin = null;
if (infrastructure is { Database: { } database, Redis: { } adminRedis })
{
    admin = builder.AddProject<Projects.TokenRouter_Admin>("admin")
        .WithDefaultHttpEndpoint()
        .WithHttpHealthCheck("/health")
        .WithReference(database).WaitFor(database)
        .WithReference(adminRedis).WaitFor(adminRedis)
        .WithEnvironment("ADMIN_API_KEY", builder.AddAdminApiKey())
        // The web console, one click from the dashboard; sign in with the admin-api-key parameter.
        .WithUrlForEndpoint("http", _ => new ResourceUrlAnnotation { Url = TokenRouter.AppHost.ProjectResourceExtensions.AdminConsolePath, DisplayText = "Console" });
}

// Prometheus scraping both apps' /metrics, and Grafana with the TokenRouter dashboard where containers run.
builder.AddTokenRouterMonitoring(infrastructure.Choice, gateway, admin);

builder.Build().Run();
