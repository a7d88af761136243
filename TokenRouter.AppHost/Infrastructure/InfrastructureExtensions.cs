using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace TokenRouter.AppHost.Infrastructure;

/// <summary>The Postgres database and Redis the apps reference; both null in <see cref="InfrastructureMode.None"/>.</summary>
public sealed record TokenRouterInfrastructure(
    InfrastructureChoice Choice,
    IResourceBuilder<IResourceWithConnectionString>? Database,
    IResourceBuilder<IResourceWithConnectionString>? Redis);

public static class InfrastructureExtensions
{
    /// <summary>Names the apps read as <c>ConnectionStrings:tokenrouter</c> and <c>ConnectionStrings:redis</c>.</summary>
    public const string PostgresName = "postgres";
    public const string DatabaseName = "tokenrouter";
    public const string RedisName = "redis";

    /// <summary>
    /// Chooses containers, local executables or nothing (see <see cref="InfrastructureSelector"/>), adds the matching
    /// resources under the same names, and logs the choice once at start-up.
    /// </summary>
    public static TokenRouterInfrastructure AddTokenRouterInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var path = Environment.GetEnvironmentVariable("PATH");
        var configuredRuntime = builder.Configuration["ASPIRE_CONTAINER_RUNTIME"];
        string? answeringRuntime = null;

        var choice = InfrastructureSelector.Choose(
            builder.Configuration[InfrastructureSelector.ConfigurationKey],
            builder.ExecutionContext.IsPublishMode,
            () => answeringRuntime = ContainerRuntimeProbe.FindAnsweringRuntime(configuredRuntime, path),
            () => LocalBinaries.Find(path));

        // DCP uses docker unless told otherwise; point it at podman when that is what answered.
        if (answeringRuntime == "podman" && string.IsNullOrWhiteSpace(configuredRuntime))
        {
            builder.Configuration["ASPIRE_CONTAINER_RUNTIME"] = "podman";
        }

        builder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
        {
            var logger = e.Services.GetRequiredService<ILoggerFactory>().CreateLogger("TokenRouter.AppHost");
            var mode = choice.Mode.ToString().ToLowerInvariant();
            if (choice.Mode == InfrastructureMode.None)
            {
                logger.LogInformation(
                    "Infrastructure mode: {Mode} ({Reason}). Skipped postgres, redis and admin; the gateway runs on its embedded in-memory stores.",
                    mode, choice.Reason);
            }
            else
            {
                logger.LogInformation("Infrastructure mode: {Mode} ({Reason}).", mode, choice.Reason);
            }

            return Task.CompletedTask;
        });

        return choice.Mode switch
        {
            InfrastructureMode.Containers => AddContainers(builder, choice),
            InfrastructureMode.Local => AddLocalProcesses(builder, choice),
            _ => new TokenRouterInfrastructure(choice, null, null),
        };
    }

    private static TokenRouterInfrastructure AddContainers(IDistributedApplicationBuilder builder, InfrastructureChoice choice)
    {
        // The volume keeps keys, prices and the usage ledger across AppHost restarts.
        var database = builder.AddPostgres(PostgresName).WithDataVolume().AddDatabase(DatabaseName);
        var redis = builder.AddRedis(RedisName);
        return new TokenRouterInfrastructure(choice, database, redis);
    }

    private static TokenRouterInfrastructure AddLocalProcesses(IDistributedApplicationBuilder builder, InfrastructureChoice choice)
    {
        var binaries = choice.Binaries;
        var asRoot = LocalPostgresSetup.IsRunningAsRoot();
        var setup = new LocalPostgresSetup(
            binaries.PostgresBinDirectory,
            binaries.PostgresMajorVersion,
            LocalPostgresSetup.ResolveDataRoot(builder.Configuration[LocalPostgresSetup.DataDirectoryKey], asRoot),
            asRoot);

        // Working directory: the temp folder, which the postgres user can enter even when the repo sits under /root.
        var postgres = builder.AddResource(new LocalPostgresResource(PostgresName, setup.Command, Path.GetTempPath()))
            .WithEndpoint(scheme: "tcp", name: LocalPostgresResource.EndpointName)
            .WithArgs(context =>
            {
                AddAll(context.Args, setup.CommandPrefix);
                AddAll(context.Args, ["-D", setup.DataDirectory, "-p"]);
                context.Args.Add(((LocalPostgresResource)context.Resource).Endpoint.Property(EndpointProperty.TargetPort));
                // TCP on loopback only; no Unix socket, whose default directory may not be writable by this user.
                AddAll(context.Args, ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]);
            })
            .OnBeforeResourceStarted((resource, e, ct) =>
                setup.EnsureDataDirectoryAsync(e.Services.GetRequiredService<ResourceLoggerService>().GetLogger(resource), ct))
            .OnResourceReady((resource, e, ct) =>
                LocalPostgresSetup.EnsureDatabaseAsync(resource, DatabaseName, e.Services.GetRequiredService<ResourceLoggerService>().GetLogger(resource), ct));
        postgres.WithHealthCheck(AddHealthCheck(builder, PostgresName, new PostgresQueryHealthCheck(postgres.Resource)));

        // Healthy only once the database exists (created when the server is ready), so WaitFor releases admin then.
        var database = builder.AddConnectionString(DatabaseName, postgres.Resource.DatabaseConnectionString(DatabaseName))
            .WithParentRelationship(postgres);
        database.WithHealthCheck(AddHealthCheck(builder, DatabaseName, new PostgresQueryHealthCheck(database.Resource)));

        var redis = builder.AddResource(new LocalRedisResource(RedisName, binaries.RedisServer ?? "redis-server", Path.GetTempPath()))
            .WithEndpoint(scheme: "tcp", name: LocalRedisResource.EndpointName)
            .WithArgs(context =>
            {
                context.Args.Add("--port");
                context.Args.Add(((LocalRedisResource)context.Resource).Endpoint.Property(EndpointProperty.TargetPort));
                // A throwaway dev instance: no snapshots, no AOF, nothing written to disk.
                AddAll(context.Args, ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            });
        redis.WithHealthCheck(AddHealthCheck(builder, RedisName, new RedisPingHealthCheck(redis.Resource)));

        return new TokenRouterInfrastructure(choice, database, redis);
    }

    private static void AddAll(IList<object> args, IEnumerable<string> values)
    {
        foreach (var value in values)
        {
            args.Add(value);
        }
    }

    private static string AddHealthCheck(IDistributedApplicationBuilder builder, string resourceName, IHealthCheck check)
    {
        var key = $"{resourceName}_protocol_check";
        builder.Services.AddHealthChecks().AddCheck(key, check);
        return key;
    }
}
