using TokenRouter.AppHost.Infrastructure;
using TokenRouter.AppHost.Monitoring;

namespace TokenRouter.Tests.AppHost;

/// <summary>Which monitoring the AppHost runs, with the machine (PATH lookup, file system) replaced.</summary>
public sealed class MonitoringPlanTests
{
    private static readonly Func<string?> Installed = () => "/usr/bin/prometheus";
    private static readonly Func<string?> NotInstalled = () => null;
    private static readonly Func<string, bool> NoFiles = _ => false;

    [Fact]
    public void Containers_mode_runs_prometheus_and_grafana_as_containers_without_looking_for_a_binary()
    {
        var plan = MonitoringPlan.Choose(InfrastructureMode.Containers, null, () => throw new InvalidOperationException("must not probe"), NoFiles);

        Assert.Equal((PrometheusHosting.Container, true), (plan.Prometheus, plan.Grafana));
        Assert.Contains("anonymous", plan.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Local_mode_runs_the_prometheus_found_on_path_and_says_grafana_is_skipped()
    {
        var plan = MonitoringPlan.Choose(InfrastructureMode.Local, null, Installed, NoFiles);

        Assert.Equal((PrometheusHosting.Executable, "/usr/bin/prometheus", false), (plan.Prometheus, plan.PrometheusBinary, plan.Grafana));
        Assert.Contains("Grafana is skipped in local mode", plan.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Local_mode_without_prometheus_runs_no_monitoring_and_says_how_to_install_it()
    {
        var plan = MonitoringPlan.Choose(InfrastructureMode.Local, "auto", NotInstalled, NoFiles);

        Assert.Equal((PrometheusHosting.None, false), (plan.Prometheus, plan.Grafana));
        Assert.Contains("apt-get install prometheus", plan.Description, StringComparison.Ordinal);
        Assert.Contains("Grafana is skipped in local mode", plan.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Configured_binary_is_used_only_when_it_exists()
    {
        var found = MonitoringPlan.Choose(InfrastructureMode.Local, "/opt/prom/prometheus", NotInstalled, path => path == "/opt/prom/prometheus");
        var missing = MonitoringPlan.Choose(InfrastructureMode.Local, "/opt/prom/prometheus", Installed, NoFiles);

        Assert.Equal((PrometheusHosting.Executable, "/opt/prom/prometheus"), (found.Prometheus, found.PrometheusBinary));
        Assert.Equal(PrometheusHosting.None, missing.Prometheus);
        Assert.Contains("/opt/prom/prometheus", missing.Description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(InfrastructureMode.None, null)]
    [InlineData(InfrastructureMode.Local, "none")]
    public void Monitoring_is_off_in_none_mode_or_when_turned_off(InfrastructureMode mode, string? configured)
    {
        var plan = MonitoringPlan.Choose(mode, configured, Installed, _ => true);

        Assert.Equal((PrometheusHosting.None, false), (plan.Prometheus, plan.Grafana));
        Assert.False(string.IsNullOrWhiteSpace(plan.Description));
    }
}
