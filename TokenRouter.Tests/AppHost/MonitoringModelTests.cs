using Aspire.Hosting.ApplicationModel;
using TokenRouter.AppHost.Infrastructure;
using TokenRouter.AppHost.Monitoring;
using static TokenRouter.Tests.AppHost.AppHostModel;

namespace TokenRouter.Tests.AppHost;

/// <summary>Prometheus and Grafana in the AppHost's model, per infrastructure mode; built, never started.</summary>
public sealed class MonitoringModelTests : IDisposable
{
    private const string Containers = $"{InfrastructureSelector.ConfigurationKey}=containers";
    private const string Local = $"{InfrastructureSelector.ConfigurationKey}=local";
    private const string None = $"{InfrastructureSelector.ConfigurationKey}=none";

    private static readonly string Deploy = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, FindRepositoryRoot(), "deploy"));
    private readonly string _fakeBinary;

    public MonitoringModelTests()
    {
        // The machine is faked: a "prometheus" that exists only for this test, named by configuration.
        _fakeBinary = Path.Combine(Directory.CreateTempSubdirectory("tokenrouter-prometheus-").FullName, "prometheus");
        File.WriteAllText(_fakeBinary, "");
    }

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_fakeBinary)!, recursive: true);

    [Fact]
    public async Task Containers_mode_runs_prometheus_with_the_deploy_config_mounted_and_both_apps_as_targets()
    {
        await using var builder = await CreateAsync(Containers);
        var prometheus = Single<ContainerResource>(builder, MonitoringResources.PrometheusName);

        var image = Assert.Single(prometheus.Annotations.OfType<ContainerImageAnnotation>());
        Assert.Equal((MonitoringResources.PrometheusImage, MonitoringResources.PrometheusTag), (image.Image, image.Tag));
        var mount = Assert.Single(prometheus.Annotations.OfType<ContainerMountAnnotation>());
        Assert.Equal((Path.Combine(Deploy, "prometheus"), MonitoringResources.ContainerDeployDirectory, ContainerMountType.BindMount, true),
            (mount.Source, mount.Target, mount.Type, mount.IsReadOnly));
        Assert.Equal("/bin/sh", prometheus.Entrypoint);
        Assert.Equal(["-c", MonitoringResources.ContainerScript], await ManifestArgumentsAsync(prometheus));

        // Aspire resolves these for the container's network; the script writes them as targets/<job>.json.
        var environment = await ManifestEnvironmentAsync(prometheus);
        Assert.Equal("""[{"targets":["{gateway.bindings.http.host}:{gateway.bindings.http.port}"]}]""", environment["TOKENROUTER_SCRAPE_GATEWAY"]);
        Assert.Equal("""[{"targets":["{admin.bindings.http.host}:{admin.bindings.http.port}"]}]""", environment["TOKENROUTER_SCRAPE_ADMIN"]);

        var endpoint = Assert.Single(prometheus.Annotations.OfType<EndpointAnnotation>());
        Assert.Equal(("http", 9090), (endpoint.UriScheme, endpoint.TargetPort));
        Assert.NotEmpty(prometheus.Annotations.OfType<HealthCheckAnnotation>());
    }

    [Fact]
    public async Task Containers_mode_runs_grafana_provisioned_from_deploy_against_prometheus_with_anonymous_access()
    {
        await using var builder = await CreateAsync(Containers);
        var grafana = Single<ContainerResource>(builder, MonitoringResources.GrafanaName);

        var image = Assert.Single(grafana.Annotations.OfType<ContainerImageAnnotation>());
        Assert.Equal(MonitoringResources.GrafanaImage, image.Image);
        var mounts = grafana.Annotations.OfType<ContainerMountAnnotation>()
            .Select(m => (m.Source, m.Target, m.Type, m.IsReadOnly)).OrderBy(m => m.Target).ToArray();
        Assert.Equal(
            [
                (Path.Combine(Deploy, "grafana", "provisioning"), "/etc/grafana/provisioning", ContainerMountType.BindMount, true),
                (Path.Combine(Deploy, "grafana", "dashboards"), "/var/lib/grafana/dashboards", ContainerMountType.BindMount, true),
            ],
            mounts);

        var environment = await ManifestEnvironmentAsync(grafana);
        Assert.Equal("{prometheus.bindings.http.url}", environment["PROMETHEUS_URL"]);
        Assert.Equal("true", environment["GF_AUTH_ANONYMOUS_ENABLED"]);
        Assert.Equal("Admin", environment["GF_AUTH_ANONYMOUS_ORG_ROLE"]);
        Assert.Equal("/var/lib/grafana/dashboards/tokenrouter.json", environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
        Assert.Equal(["prometheus"], WaitedFor(grafana));
        Assert.NotEmpty(grafana.Annotations.OfType<HealthCheckAnnotation>());
    }

    [Fact]
    public async Task Local_mode_runs_the_installed_prometheus_on_loopback_with_a_health_check_and_no_grafana()
    {
        await using var builder = await CreateAsync(Local, $"{MonitoringPlan.PrometheusBinaryKey}={_fakeBinary}");

        var prometheus = Single<ExecutableResource>(builder, MonitoringResources.PrometheusName);
        Assert.Equal(_fakeBinary, prometheus.Command);
        var args = await ManifestArgumentsAsync(prometheus);
        Assert.Contains("--web.listen-address=127.0.0.1:{prometheus.bindings.http.targetPort}", args);
        var config = Assert.Single(args, a => a.StartsWith("--config.file=", StringComparison.Ordinal));
        Assert.EndsWith(Path.Combine("prometheus", "prometheus.yml"), config, StringComparison.Ordinal);
        Assert.Single(args, a => a.StartsWith("--storage.tsdb.path=", StringComparison.Ordinal));

        Assert.Equal("http", Assert.Single(prometheus.Annotations.OfType<EndpointAnnotation>()).UriScheme);
        Assert.NotEmpty(prometheus.Annotations.OfType<HealthCheckAnnotation>());
        Assert.DoesNotContain(builder.Resources, r => r.Name == MonitoringResources.GrafanaName);
        Assert.Empty(builder.Resources.OfType<ContainerResource>());
    }

    [Theory]
    [InlineData("/no/such/dir/prometheus")]
    [InlineData("none")]
    public async Task Local_mode_without_a_usable_prometheus_adds_no_monitoring_resources(string configured)
    {
        await using var builder = await CreateAsync(Local, $"{MonitoringPlan.PrometheusBinaryKey}={configured}");

        Assert.DoesNotContain(builder.Resources, r => r.Name is MonitoringResources.PrometheusName or MonitoringResources.GrafanaName);
        Assert.Contains(builder.Resources, r => r.Name == "gateway");
    }

    [Fact]
    public async Task None_mode_adds_no_monitoring_even_where_prometheus_is_installed()
    {
        await using var builder = await CreateAsync(None, $"{MonitoringPlan.PrometheusBinaryKey}={_fakeBinary}");

        Assert.DoesNotContain(builder.Resources, r => r.Name is MonitoringResources.PrometheusName or MonitoringResources.GrafanaName);
        Assert.Empty(builder.Resources.OfType<ContainerResource>());
        Assert.DoesNotContain(builder.Resources.OfType<ExecutableResource>(), r => r.Command == _fakeBinary);
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "deploy", "prometheus", "prometheus.yml"))) return dir.FullName;
        }

        throw new DirectoryNotFoundException($"No deploy/prometheus/prometheus.yml above {AppContext.BaseDirectory}.");
    }
}
