using TokenRouter.AppHost.Infrastructure;

namespace TokenRouter.AppHost.Monitoring;

/// <summary>How Prometheus runs, if at all.</summary>
public enum PrometheusHosting
{
    None,

    /// <summary>The <c>prom/prometheus</c> container (with Grafana beside it).</summary>
    Container,

    /// <summary>A locally installed <c>prometheus</c> binary run as an executable resource.</summary>
    Executable,
}

/// <summary>What monitoring the AppHost adds, and the sentence it logs about it at start-up.</summary>
public sealed record MonitoringPlan(PrometheusHosting Prometheus, string? PrometheusBinary, bool Grafana, string Description)
{
    /// <summary>
    /// <c>TokenRouter:Local:Prometheus</c>: the prometheus binary for local mode. Unset or <c>auto</c>: found on PATH;
    /// <c>none</c>: do not run Prometheus; anything else: the path of the binary.
    /// </summary>
    public const string PrometheusBinaryKey = "TokenRouter:Local:Prometheus";

    /// <summary>
    /// Follows the infrastructure mode, pure over its inputs so the rules are unit-testable: containers bring Prometheus
    /// and Grafana containers; local mode runs Prometheus from its binary when one is installed and never Grafana (it is
    /// only offered as a container); none mode adds nothing.
    /// </summary>
    /// <param name="configuredBinary">The value of <see cref="PrometheusBinaryKey"/>.</param>
    /// <param name="findOnPath">Looks <c>prometheus</c> up on PATH.</param>
    /// <param name="fileExists">Whether a configured path exists.</param>
    public static MonitoringPlan Choose(InfrastructureMode mode, string? configuredBinary, Func<string?> findOnPath, Func<string, bool> fileExists)
    {
        const string Scrapes = "scraping /metrics of the gateway and admin";
        switch (mode)
        {
            case InfrastructureMode.Containers:
                return new(PrometheusHosting.Container, null, Grafana: true,
                    $"Prometheus ({MonitoringResources.PrometheusImage}:{MonitoringResources.PrometheusTag}) and Grafana " +
                    $"({MonitoringResources.GrafanaImage}:{MonitoringResources.GrafanaTag}) containers, {Scrapes}; Grafana opens without a login " +
                    "(anonymous, Admin role: for local use only) on the provisioned TokenRouter dashboard.");
            case InfrastructureMode.None:
                return new(PrometheusHosting.None, null, Grafana: false,
                    "skipped in none mode: no Prometheus and no Grafana. The gateway still serves its metrics at /metrics.");
        }

        const string NoGrafana = "Grafana is skipped in local mode (it is only run as a container); to see the dashboard, " +
                                 "import deploy/grafana/dashboards/tokenrouter.json into a Grafana of your own.";
        var configured = configuredBinary?.Trim();
        if (string.Equals(configured, "none", StringComparison.OrdinalIgnoreCase))
        {
            return new(PrometheusHosting.None, null, Grafana: false,
                $"Prometheus is turned off by {PrometheusBinaryKey}=none. {NoGrafana}");
        }

        string? binary;
        string missing;
        if (string.IsNullOrEmpty(configured) || string.Equals(configured, "auto", StringComparison.OrdinalIgnoreCase))
        {
            binary = findOnPath();
            missing = "no prometheus binary on PATH (install it with 'apt-get install prometheus', or set " +
                      $"{PrometheusBinaryKey} to its path)";
        }
        else
        {
            binary = fileExists(configured) ? configured : null;
            missing = $"{PrometheusBinaryKey} is '{configured}', which does not exist";
        }

        return binary is null
            ? new(PrometheusHosting.None, null, Grafana: false, $"Prometheus is skipped: {missing}. {NoGrafana} The apps still serve /metrics.")
            : new(PrometheusHosting.Executable, binary, Grafana: false, $"Prometheus runs locally from {binary}, {Scrapes}. {NoGrafana}");
    }

    /// <summary>The real machine: PATH lookup and the file system.</summary>
    public static MonitoringPlan ForThisMachine(InfrastructureMode mode, string? configuredBinary) =>
        Choose(mode, configuredBinary,
            () => ProcessRunner.FindOnPath("prometheus", Environment.GetEnvironmentVariable("PATH")),
            File.Exists);
}
