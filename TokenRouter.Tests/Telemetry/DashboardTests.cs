using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using TokenRouter.AppHost.Monitoring;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// The provisioned Grafana dashboard and the files around it (deploy/): the JSON is a dashboard Grafana can load, every
/// metric its PromQL selects is one the gateway or Admin really exports (read from their /metrics after traffic), and the
/// Prometheus/Grafana provisioning files agree with each other and with the AppHost.
/// </summary>
[Collection(ProcessWideMetricsCollection.Name)]
public sealed class DashboardTests
{
    /// <summary>Series Prometheus itself adds to every scrape target; no app exports them.</summary>
    private static readonly string[] PrometheusSynthesized = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

    private static readonly string Deploy = FindDeployDirectory();
    private static readonly string DashboardPath = Path.Combine(Deploy, "grafana", "dashboards", "tokenrouter.json");

    [Fact]
    public void Dashboard_is_a_grafana_dashboard_whose_panels_all_query_the_provisioned_prometheus()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(DashboardPath));
        var root = json.RootElement;

        Assert.Equal("tokenrouter", root.GetProperty("uid").GetString());
        Assert.True(root.GetProperty("schemaVersion").GetInt32() >= 36);
        var variables = root.GetProperty("templating").GetProperty("list").EnumerateArray().ToArray();
        var datasource = Assert.Single(variables, v => v.GetProperty("type").GetString() == "datasource");
        Assert.Equal(ProvisionedDatasourceUid(), datasource.GetProperty("current").GetProperty("value").GetString());

        var panels = AllPanels(root).ToArray();
        Assert.Equal(panels.Length, panels.Select(p => p.GetProperty("id").GetInt32()).Distinct().Count());
        var queryPanels = panels.Where(p => p.GetProperty("type").GetString() != "row").ToArray();
        Assert.True(queryPanels.Length >= 20, $"expected a full dashboard, found {queryPanels.Length} panels");
        foreach (var panel in queryPanels)
        {
            var title = panel.GetProperty("title").GetString();
            Assert.Equal("${datasource}", panel.GetProperty("datasource").GetProperty("uid").GetString());
            var grid = panel.GetProperty("gridPos");
            Assert.True(grid.GetProperty("x").GetInt32() + grid.GetProperty("w").GetInt32() <= 24, $"panel '{title}' is wider than the grid");
            var targets = panel.GetProperty("targets").EnumerateArray().ToArray();
            Assert.NotEmpty(targets);
            Assert.All(targets, t => Assert.False(string.IsNullOrWhiteSpace(t.GetProperty("expr").GetString()), $"panel '{title}' has an empty query"));
        }

        // What the brief of the dashboard asks for, by the metric each needs.
        var queried = Expressions(root).SelectMany(PromQl.MetricNames).ToHashSet();
        Assert.Superset(
            new HashSet<string>
            {
                "tokenrouter_cost_USD_total", "tokenrouter_cache_savings_USD_total", "tokenrouter_dedup_savings_USD_total",
                "tokenrouter_tokens_total", "tokenrouter_dedup_requests_total", "tokenrouter_requests_total",
                "http_server_request_duration_seconds_bucket", "tokenrouter_gateway_overhead_seconds_bucket",
                "tokenrouter_upstream_ttfb_seconds_bucket", "tokenrouter_requests_inflight", "tokenrouter_rejections_total",
                "tokenrouter_usage_backlog", "tokenrouter_ledger_backlog",
            },
            queried);
    }

    [Fact]
    public async Task Every_metric_the_dashboard_queries_is_exported_by_the_gateway_or_admin()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(DashboardPath));
        var queried = Expressions(json.RootElement).SelectMany(PromQl.MetricNames)
            .Concat(VariableQueries(json.RootElement).Select(PromQl.LabelValuesMetric).OfType<string>())
            .ToHashSet(StringComparer.Ordinal);

        var exported = await ExportedAfterTrafficAsync();

        var unknown = queried.Except(exported).Except(PrometheusSynthesized).Order().ToArray();
        Assert.True(unknown.Length == 0,
            $"The dashboard queries metrics nothing exports: {string.Join(", ", unknown)}.\n" +
            $"Exported tokenrouter_* names: {string.Join(", ", exported.Where(n => n.StartsWith("tokenrouter_", StringComparison.Ordinal)).Order())}");
    }

    [Fact]
    public void Metric_names_are_found_in_promql_and_labels_functions_and_variables_are_not()
    {
        Assert.Equal(
            ["tokenrouter_upstream_ttfb_seconds_bucket"],
            PromQl.MetricNames("histogram_quantile(0.95, sum by (le, provider) (rate(tokenrouter_upstream_ttfb_seconds_bucket{provider=~\"$provider\"}[$__rate_interval])))").Order());
        Assert.Equal(
            ["a_total", "b_total"],
            PromQl.MetricNames("(sum(increase(a_total{model=~\"x|y\"}[$__range])) or vector(0)) / clamp_min(sum(rate(b_total[5m])) * 3600, 1e-12)").Order());
        Assert.Equal("tokenrouter_requests_total", PromQl.LabelValuesMetric("label_values(tokenrouter_requests_total{provider=~\"$provider\"}, model)"));
    }

    [Fact]
    public void Prometheus_scrapes_both_apps_from_the_target_files_the_apphost_writes()
    {
        var config = File.ReadAllText(Path.Combine(Deploy, "prometheus", "prometheus.yml"));
        foreach (var job in MonitoringResources.TargetVariables.Keys)
        {
            Assert.Matches(new Regex($@"- job_name: {job}\s+metrics_path: /metrics\s+file_sd_configs:\s+- files: \[targets/{job}\.json\]"), config);
        }

        // The same job names are what the dashboard's job matchers select.
        var dashboard = File.ReadAllText(DashboardPath);
        Assert.Contains("job=\\\"gateway\\\"", dashboard, StringComparison.Ordinal);
        Assert.Contains("job=~\\\"gateway|admin\\\"", dashboard, StringComparison.Ordinal);

        Assert.Equal("[]", MonitoringResources.TargetsJson(null));
        using var targets = JsonDocument.Parse(MonitoringResources.TargetsJson("127.0.0.1:8080"));
        Assert.Equal("127.0.0.1:8080", targets.RootElement[0].GetProperty("targets")[0].GetString());
    }

    [Fact]
    public void Grafana_provisioning_points_the_datasource_at_prometheus_and_loads_dashboards_from_the_mounted_folder()
    {
        var datasources = File.ReadAllText(Path.Combine(Deploy, "grafana", "provisioning", "datasources", "prometheus.yml"));
        Assert.Contains("type: prometheus", datasources, StringComparison.Ordinal);
        Assert.Contains("url: ${PROMETHEUS_URL}", datasources, StringComparison.Ordinal);

        var dashboards = File.ReadAllText(Path.Combine(Deploy, "grafana", "provisioning", "dashboards", "tokenrouter.yml"));
        Assert.Contains($"path: {MonitoringResources.GrafanaDashboardsDirectory}", dashboards, StringComparison.Ordinal);
        Assert.Contains("type: file", dashboards, StringComparison.Ordinal);
    }

    /// <summary>
    /// The exposition names of a gateway in Redis mode and of Admin draining its usage stream into Postgres, after
    /// traffic that makes every instrument report: priced, cached, streamed, unpriced and deduplicated requests, a
    /// request refused by a concurrency limit, usage records flowing into the ledger.
    /// </summary>
    private static async Task<IReadOnlySet<string>> ExportedAfterTrafficAsync()
    {
        await using var redis = await RedisServer.StartNewAsync();
        var postgres = await PostgresServer.GetSharedAsync();
        var database = await postgres.CreateDatabaseAsync("dashboard_" + Guid.NewGuid().ToString("N")[..12]);
        var adminSettings = AdminAppFactory.SettingsFor(database, redis.ConnectionString);
        adminSettings["Admin:Ledger:StatusInterval"] = "00:00:00.200";
        await using var admin = new AdminAppFactory(adminSettings);
        using var adminClient = admin.CreateClient();

        await using var gateway = await MeteredGateway.StartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:redis"] = redis.ConnectionString,
            ["Limits:StreamConcurrent"] = "1",
        });
        var model = MeteredGateway.PricedAsGpt4o();
        var provider = gateway.Provider;
        provider.RespondOpenAIText("cached", new OpenAIUsage(Prompt: 2048, Completion: 10, Cached: 1024));

        (await gateway.SendAsync(MeteredGateway.Chat(model, "one"))).Dispose();
        (await gateway.SendAsync(MeteredGateway.Chat("gpt-tr-unlisted-model", "two"))).Dispose();

        // A stream held upstream takes the only streaming slot: a second stream is refused (a rejection); identical
        // non-streaming twins meanwhile share one upstream call (a deduplicated request).
        provider.CloseGate();
        var held = gateway.SendAsync(MeteredGateway.Chat(model, "held stream", stream: true));
        await provider.WaitForWaitingAtGateAsync(1, MeteredGateway.Timeout);
        using (var refused = await gateway.SendAsync(MeteredGateway.Chat(model, "second stream", stream: true)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        }

        var twins = Enumerable.Range(0, 2).Select(_ => gateway.SendAsync(MeteredGateway.Chat(model, "twins"))).ToArray();
        await provider.WaitForWaitingAtGateAsync(2, MeteredGateway.Timeout);
        await gateway.ScrapeWhenAsync(s => s.Sum("tokenrouter_pipeline_duration_seconds_count") >= 6, "both twins through the pipeline");
        provider.OpenGate();
        foreach (var response in await Task.WhenAll([held, .. twins]))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
            response.Dispose();
        }

        var gatewayScrape = await gateway.ScrapeWhenAsync(
            s => s.Sum("tokenrouter_dedup_requests_total") >= 1 && s.Sum("tokenrouter_requests_total") >= 5 && s.Sum("tokenrouter_rejections_total") >= 1,
            "the deduplicated twin, five chat requests and the rejection");
        var adminScrape = await ScrapeWhenAsync(adminClient,
            s => s.Sum("tokenrouter_ledger_entries_total", ("outcome", "stored")) >= 5 && s.Series("tokenrouter_ledger_backlog").Any(),
            "five usage records stored in the ledger and its backlog");
        return gatewayScrape.Names.Union(adminScrape.Names).ToHashSet(StringComparer.Ordinal);
    }

    private static async Task<PrometheusScrape> ScrapeWhenAsync(HttpClient client, Func<PrometheusScrape, bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(MeteredGateway.Timeout);
        while (true)
        {
            using var response = await client.GetAsync("/metrics");
            response.EnsureSuccessStatusCode();
            var scrape = PrometheusScrape.Parse(await response.Content.ReadAsStringAsync());
            if (condition(scrape)) return scrape;
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Admin's /metrics never showed {what}: " +
                    string.Join("\n", scrape.Samples.Where(s => s.Name.StartsWith("tokenrouter_", StringComparison.Ordinal))));
            }
        }
    }

    private static IEnumerable<JsonElement> AllPanels(JsonElement root)
    {
        foreach (var panel in root.GetProperty("panels").EnumerateArray())
        {
            yield return panel;
            if (panel.TryGetProperty("panels", out var nested))
            {
                foreach (var inner in nested.EnumerateArray()) yield return inner;
            }
        }
    }

    private static IEnumerable<string> Expressions(JsonElement root) =>
        AllPanels(root)
            .Where(p => p.TryGetProperty("targets", out _))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .Select(t => t.GetProperty("expr").GetString()!);

    private static IEnumerable<string> VariableQueries(JsonElement root) =>
        root.GetProperty("templating").GetProperty("list").EnumerateArray()
            .Where(v => v.GetProperty("type").GetString() == "query")
            .Select(v => v.GetProperty("definition").GetString()!);

    private static string ProvisionedDatasourceUid()
    {
        var datasources = File.ReadAllText(Path.Combine(Deploy, "grafana", "provisioning", "datasources", "prometheus.yml"));
        return Regex.Match(datasources, @"^\s+uid:\s*(\S+)\s*$", RegexOptions.Multiline).Groups[1].Value;
    }

    private static string FindDeployDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var deploy = Path.Combine(dir.FullName, "deploy");
            if (File.Exists(Path.Combine(deploy, "grafana", "dashboards", "tokenrouter.json"))) return deploy;
        }

        throw new DirectoryNotFoundException($"No deploy/grafana/dashboards/tokenrouter.json above {AppContext.BaseDirectory}.");
    }
}
