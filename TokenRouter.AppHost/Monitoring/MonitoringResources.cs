using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TokenRouter.AppHost.Infrastructure;

namespace TokenRouter.AppHost.Monitoring;

/// <summary>
/// Prometheus (scraping the gateway's and Admin's <c>/metrics</c>) and Grafana (provisioned with the TokenRouter
/// dashboard), as <see cref="MonitoringPlan"/> decides. The scrape configuration is <c>deploy/prometheus/prometheus.yml</c>
/// unchanged; the targets it discovers (<c>targets/gateway.json</c>, <c>targets/admin.json</c> next to the config) are
/// written at start-up from the endpoints Aspire allocated — by the AppHost for a local Prometheus, by the container
/// itself from environment variables that Aspire resolves for the container's network otherwise.
/// </summary>
public static class MonitoringResources
{
    public const string PrometheusName = "prometheus";
    public const string GrafanaName = "grafana";
    public const string PrometheusImage = "prom/prometheus";
    public const string PrometheusTag = "v3.5.0";
    public const string GrafanaImage = "grafana/grafana";
    public const string GrafanaTag = "12.0.2";
    public const string EndpointName = "http";

    /// <summary>Health: Prometheus answers 200 on <c>/-/ready</c> once it serves queries; Grafana on <c>/api/health</c>.</summary>
    public const string PrometheusReadyPath = "/-/ready";
    public const string GrafanaHealthPath = "/api/health";

    /// <summary>Where the container sees deploy/prometheus (read-only) and where it assembles its runtime configuration.</summary>
    public const string ContainerDeployDirectory = "/etc/tokenrouter/prometheus";
    public const string ContainerRuntimeDirectory = "/prometheus/tokenrouter";

    public const string GrafanaProvisioningDirectory = "/etc/grafana/provisioning";
    public const string GrafanaDashboardsDirectory = "/var/lib/grafana/dashboards";

    /// <summary>Environment variables holding the file_sd JSON of each job (container mode).</summary>
    public static readonly IReadOnlyDictionary<string, string> TargetVariables = new Dictionary<string, string>
    {
        ["gateway"] = "TOKENROUTER_SCRAPE_GATEWAY",
        ["admin"] = "TOKENROUTER_SCRAPE_ADMIN",
    };

    /// <summary>
    /// The container's command: copy the shipped config next to a targets folder in its writable data volume, write the
    /// targets Aspire resolved for this container, then become Prometheus. The image is busybox-based, so /bin/sh exists.
    /// </summary>
    public static readonly string ContainerScript = string.Join('\n',
        "set -eu",
        $"mkdir -p {ContainerRuntimeDirectory}/targets",
        $"cp {ContainerDeployDirectory}/prometheus.yml {ContainerRuntimeDirectory}/prometheus.yml",
        $"printf '%s\\n' \"${TargetVariables["gateway"]}\" > {ContainerRuntimeDirectory}/targets/gateway.json",
        $"printf '%s\\n' \"${TargetVariables["admin"]}\" > {ContainerRuntimeDirectory}/targets/admin.json",
        $"exec /bin/prometheus --config.file={ContainerRuntimeDirectory}/prometheus.yml --storage.tsdb.path=/prometheus/data --web.listen-address=:9090");

    public static void AddTokenRouterMonitoring(
        this IDistributedApplicationBuilder builder,
        InfrastructureChoice infrastructure,
        IResourceBuilder<ProjectResource> gateway,
        IResourceBuilder<ProjectResource>? admin)
    {
        var plan = MonitoringPlan.ForThisMachine(infrastructure.Mode, builder.Configuration[MonitoringPlan.PrometheusBinaryKey]);
        builder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
        {
            e.Services.GetRequiredService<ILoggerFactory>().CreateLogger("TokenRouter.AppHost")
                .LogInformation("Monitoring: {Monitoring}", plan.Description);
            return Task.CompletedTask;
        });

        var deploy = DeployDirectory(builder);
        var scraped = new List<(string Job, EndpointReference? Endpoint)>
        {
            ("gateway", gateway.GetEndpoint(EndpointName)),
            ("admin", admin?.GetEndpoint(EndpointName)),
        };

        switch (plan.Prometheus)
        {
            case PrometheusHosting.Container:
                var prometheus = AddPrometheusContainer(builder, deploy, scraped);
                if (plan.Grafana) AddGrafanaContainer(builder, deploy, prometheus);
                break;
            case PrometheusHosting.Executable:
                AddPrometheusExecutable(builder, plan.PrometheusBinary!, deploy, scraped);
                break;
        }
    }

    /// <summary><c>deploy/</c> at the repository root, next to the AppHost project.</summary>
    public static string DeployDirectory(IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(Path.Combine(builder.AppHostDirectory, "..", "deploy"));

    /// <summary>Prometheus file_sd content: one target group, or none when the app does not run.</summary>
    public static string TargetsJson(string? hostAndPort) =>
        hostAndPort is null ? "[]" : $"[{{\"targets\":[\"{hostAndPort}\"]}}]";

    private static IResourceBuilder<ContainerResource> AddPrometheusContainer(
        IDistributedApplicationBuilder builder, string deploy, IReadOnlyList<(string Job, EndpointReference? Endpoint)> scraped)
    {
        var prometheus = builder.AddContainer(PrometheusName, PrometheusImage, PrometheusTag)
            .WithBindMount(Path.Combine(deploy, "prometheus"), ContainerDeployDirectory, isReadOnly: true)
            .WithEntrypoint("/bin/sh")
            .WithArgs("-c", ContainerScript)
            .WithHttpEndpoint(targetPort: 9090, name: EndpointName)
            .WithHttpHealthCheck(PrometheusReadyPath)
            .WithUrlForEndpoint(EndpointName, u => u.DisplayText = "Prometheus");

        foreach (var (job, endpoint) in scraped)
        {
            // Resolved by Aspire for the container's own network (container tunnel or host bridge), as it does for any
            // endpoint a container references; a missing app gets an empty target list.
            var value = endpoint is null
                ? ReferenceExpression.Create($"[]")
                : ReferenceExpression.Create($"[{{\"targets\":[\"{endpoint.Property(EndpointProperty.HostAndPort)}\"]}}]");
            prometheus.WithEnvironment(TargetVariables[job], value);
        }

        return prometheus;
    }

    private static void AddGrafanaContainer(IDistributedApplicationBuilder builder, string deploy, IResourceBuilder<ContainerResource> prometheus) =>
        builder.AddContainer(GrafanaName, GrafanaImage, GrafanaTag)
            .WithBindMount(Path.Combine(deploy, "grafana", "provisioning"), GrafanaProvisioningDirectory, isReadOnly: true)
            .WithBindMount(Path.Combine(deploy, "grafana", "dashboards"), GrafanaDashboardsDirectory, isReadOnly: true)
            .WithEnvironment("PROMETHEUS_URL", prometheus.GetEndpoint(EndpointName))
            // Local use only: anyone who can reach the port is an admin of this Grafana.
            .WithEnvironment("GF_AUTH_ANONYMOUS_ENABLED", "true")
            .WithEnvironment("GF_AUTH_ANONYMOUS_ORG_ROLE", "Admin")
            .WithEnvironment("GF_AUTH_DISABLE_LOGIN_FORM", "true")
            .WithEnvironment("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", $"{GrafanaDashboardsDirectory}/tokenrouter.json")
            .WithEnvironment("GF_ANALYTICS_REPORTING_ENABLED", "false")
            .WithEnvironment("GF_ANALYTICS_CHECK_FOR_UPDATES", "false")
            .WithHttpEndpoint(targetPort: 3000, name: EndpointName)
            .WithHttpHealthCheck(GrafanaHealthPath)
            .WithUrlForEndpoint(EndpointName, u => u.DisplayText = "Grafana (TokenRouter dashboard)")
            .WaitFor(prometheus);

    private static void AddPrometheusExecutable(
        IDistributedApplicationBuilder builder, string binary, string deploy, IReadOnlyList<(string Job, EndpointReference? Endpoint)> scraped)
    {
        var runtime = Path.Combine(LocalPostgresSetup.ResolveDataRoot(
            builder.Configuration[LocalPostgresSetup.DataDirectoryKey], LocalPostgresSetup.IsRunningAsRoot()), "prometheus");
        var config = Path.Combine(runtime, "prometheus.yml");

        // Working directory: the temp folder, which always exists; every path Prometheus uses is absolute.
        var prometheus = builder.AddExecutable(PrometheusName, binary, Path.GetTempPath())
            .WithHttpEndpoint(name: EndpointName)
            .WithArgs(context =>
            {
                var endpoint = ((IResourceWithEndpoints)context.Resource).GetEndpoint(EndpointName);
                context.Args.Add($"--config.file={config}");
                context.Args.Add($"--storage.tsdb.path={Path.Combine(runtime, "data")}");
                // Loopback only, on the port DCP proxies to.
                context.Args.Add(ReferenceExpression.Create($"--web.listen-address=127.0.0.1:{endpoint.Property(EndpointProperty.TargetPort)}"));
            })
            .WithHttpHealthCheck(PrometheusReadyPath)
            .WithUrlForEndpoint(EndpointName, u => u.DisplayText = "Prometheus");

        prometheus.OnBeforeResourceStarted(async (resource, e, ct) =>
        {
            var logger = e.Services.GetRequiredService<ResourceLoggerService>().GetLogger(resource);
            Directory.CreateDirectory(Path.Combine(runtime, "targets"));
            File.Copy(Path.Combine(deploy, "prometheus", "prometheus.yml"), config, overwrite: true);
            foreach (var (job, endpoint) in scraped)
            {
                string? hostAndPort = null;
                if (endpoint is not null)
                {
                    // The host's view of the app (the DCP proxy on loopback), which is where this Prometheus runs.
                    var host = await endpoint.Property(EndpointProperty.IPV4Host).GetValueAsync(ct).ConfigureAwait(false);
                    var port = await endpoint.Property(EndpointProperty.Port).GetValueAsync(ct).ConfigureAwait(false);
                    hostAndPort = $"{host}:{port}";
                }

                await File.WriteAllTextAsync(Path.Combine(runtime, "targets", job + ".json"), TargetsJson(hostAndPort) + "\n", new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), ct)
                    .ConfigureAwait(false);
                logger.LogInformation("Scrape target for job {Job}: {Target}", job, hostAndPort ?? "(not running)");
            }

            logger.LogInformation("Configuration {Config} (a copy of deploy/prometheus/prometheus.yml), data in {Data}.", config, Path.Combine(runtime, "data"));
        });
    }
}
