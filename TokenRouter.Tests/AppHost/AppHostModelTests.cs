using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Publishing;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using TokenRouter.AppHost.Infrastructure;

namespace TokenRouter.Tests.AppHost;

/// <summary>
/// The AppHost's resource graph, built without starting anything (no DCP, no containers, ~0.2 s each).
/// The infrastructure mode is always forced so the result does not depend on what this machine has installed.
/// </summary>
public sealed class AppHostModelTests
{
    private const string Local = $"{InfrastructureSelector.ConfigurationKey}=local";

    [Fact]
    public async Task Gateway_references_redis_and_is_externally_reachable()
    {
        await using var builder = await CreateAsync(Local);
        var gateway = Project(builder, "gateway");

        var http = Assert.Single(gateway.Annotations.OfType<EndpointAnnotation>(), e => e.UriScheme == "http");
        Assert.True(http.IsExternal);
        Assert.Contains(gateway.Annotations.OfType<HealthCheckAnnotation>(), h => h.Key.Contains("gateway", StringComparison.Ordinal));

        var environment = await ManifestEnvironmentAsync(gateway);
        Assert.Equal("{redis.connectionString}", environment["ConnectionStrings__redis"]);
        Assert.Contains("redis", WaitedFor(gateway));
        Assert.DoesNotContain(environment.Keys, k => k == "ConnectionStrings__tokenrouter");
    }

    [Fact]
    public async Task Admin_references_the_tokenrouter_database_and_redis_and_waits_for_both()
    {
        await using var builder = await CreateAsync(Local);
        var admin = Project(builder, "admin");

        var environment = await ManifestEnvironmentAsync(admin);
        Assert.Equal("{tokenrouter.connectionString}", environment["ConnectionStrings__tokenrouter"]);
        Assert.Equal("{redis.connectionString}", environment["ConnectionStrings__redis"]);
        Assert.Equal(["redis", "tokenrouter"], WaitedFor(admin).Order().ToArray());
    }

    [Fact]
    public async Task Admin_key_is_a_secret_parameter_generated_once_and_kept_in_user_secrets()
    {
        await using var builder = await CreateAsync(Local);
        var admin = Project(builder, "admin");

        var parameter = Assert.Single(builder.Resources.OfType<ParameterResource>(), p => p.Name == "admin-api-key");
        Assert.True(parameter.Secret);
        // Generated when not configured (persisted to user secrets so it stays the same across runs); no special
        // characters because it is pasted into headers and shells.
        Assert.Equal("""{"generate":{"minLength":32,"special":false}}""", DefaultAsManifestJson(parameter));
        Assert.Equal("{admin-api-key.value}", (await ManifestEnvironmentAsync(admin))["ADMIN_API_KEY"]);
    }

    [Fact]
    public async Task Admin_links_its_web_console_from_the_dashboard()
    {
        await using var builder = await CreateAsync(Local);
        var admin = Project(builder, "admin");
        var http = Assert.Single(admin.Annotations.OfType<EndpointAnnotation>(), e => e.Name == "http");
        http.AllocatedEndpoint = new AllocatedEndpoint(http, "localhost", 8081);

        // What the dashboard shows once the endpoint is allocated: the endpoint itself plus the console.
        var urls = new List<ResourceUrlAnnotation>();
        var context = new ResourceUrlsCallbackContext(
            new DistributedApplicationExecutionContext(DistributedApplicationOperation.Run), admin, urls, CancellationToken.None);
        foreach (var annotation in admin.Annotations.OfType<ResourceUrlsCallbackAnnotation>())
        {
            await annotation.Callback(context);
        }

        // A path on the http endpoint; the dashboard puts the endpoint's address in front of it.
        var console = Assert.Single(urls, u => u.DisplayText == "Console");
        Assert.Equal("/console", console.Url);
        Assert.Equal("http", console.Endpoint?.EndpointName);
    }

    [Fact]
    public async Task Local_mode_runs_postgres_and_redis_as_health_checked_executables_and_no_containers()
    {
        await using var builder = await CreateAsync(Local);

        var postgres = Assert.Single(builder.Resources.OfType<LocalPostgresResource>());
        var redis = Assert.Single(builder.Resources.OfType<LocalRedisResource>());
        var database = Assert.Single(builder.Resources.OfType<ConnectionStringResource>(), r => r.Name == "tokenrouter");
        Assert.Equal(("postgres", "redis"), (postgres.Name, redis.Name));
        Assert.All(new IResource[] { postgres, redis, database }, r => Assert.NotEmpty(r.Annotations.OfType<HealthCheckAnnotation>()));

        // A container resource under the testing builder on a machine without an engine fails StartAsync after 30 s.
        Assert.Empty(builder.Resources.OfType<ContainerResource>());
    }

    [Fact]
    public async Task Local_servers_listen_on_loopback_only_and_write_nothing_for_redis()
    {
        await using var builder = await CreateAsync(Local);

        var postgresArgs = await ManifestArgumentsAsync(builder.Resources.OfType<LocalPostgresResource>().Single());
        Assert.Contains("listen_addresses=127.0.0.1", postgresArgs);
        Assert.Contains("{postgres.bindings.tcp.targetPort}", postgresArgs);

        var redisArgs = await ManifestArgumentsAsync(builder.Resources.OfType<LocalRedisResource>().Single());
        Assert.Equal(
            ["--port", "{redis.bindings.tcp.targetPort}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            redisArgs);
    }

    [Fact]
    public async Task Forced_none_mode_runs_the_gateway_alone()
    {
        await using var builder = await CreateAsync($"{InfrastructureSelector.ConfigurationKey}=none");

        Assert.Equal(["gateway"], builder.Resources.OfType<ProjectResource>().Select(p => p.Name).ToArray());
        Assert.DoesNotContain(builder.Resources, r => r.Name is "postgres" or "tokenrouter" or "redis" or "admin");

        var environment = await ManifestEnvironmentAsync(Project(builder, "gateway"));
        Assert.DoesNotContain(environment.Keys, k => k.StartsWith("ConnectionStrings__", StringComparison.Ordinal));
        Assert.Empty(WaitedFor(Project(builder, "gateway")));
    }

    [Fact]
    public async Task Containers_mode_uses_postgres_and_redis_containers_under_the_same_names()
    {
        // Model only: never started, so no container runtime is needed.
        await using var builder = await CreateAsync($"{InfrastructureSelector.ConfigurationKey}=containers");

        Assert.Single(builder.Resources.OfType<PostgresServerResource>(), r => r.Name == "postgres");
        Assert.Single(builder.Resources.OfType<PostgresDatabaseResource>(), r => r.Name == "tokenrouter" && r.DatabaseName == "tokenrouter");
        Assert.Single(builder.Resources.OfType<RedisResource>(), r => r.Name == "redis");
        Assert.Empty(builder.Resources.OfType<LocalPostgresResource>());

        var admin = Project(builder, "admin");
        var environment = await ManifestEnvironmentAsync(admin);
        Assert.Equal("{tokenrouter.connectionString}", environment["ConnectionStrings__tokenrouter"]);
        Assert.Equal("{redis.connectionString}", environment["ConnectionStrings__redis"]);
        Assert.Contains("tokenrouter", WaitedFor(admin));
        Assert.Contains("redis", WaitedFor(admin));
    }

    [Fact]
    public async Task Provider_settings_are_forwarded_only_when_set_and_api_keys_only_as_secret_parameters()
    {
        await using var builder = await CreateAsync(
            Local,
            "OPENAI_BASE_URL=https://openai.example/v1",
            "OPENAI_API_KEY=sk-test-not-a-real-key",
            "DEDUP_ENABLED=false",
            // Empty overrides whatever the machine running the tests has set.
            "DEEPSEEK_BASE_URL=",
            "DEEPSEEK_API_KEY=");

        var environment = await ManifestEnvironmentAsync(Project(builder, "gateway"));

        Assert.Equal("https://openai.example/v1", environment["OPENAI_BASE_URL"]);
        Assert.Equal("false", environment["DEDUP_ENABLED"]);
        Assert.Equal("{openai-api-key.value}", environment["OPENAI_API_KEY"]);
        Assert.True(Assert.Single(builder.Resources.OfType<ParameterResource>(), p => p.Name == "openai-api-key").Secret);
        Assert.DoesNotContain("sk-test-not-a-real-key", environment.Values);
        Assert.False(environment.ContainsKey("DEEPSEEK_BASE_URL"));
        Assert.False(environment.ContainsKey("DEEPSEEK_API_KEY"));
    }

    private static Task<IDistributedApplicationTestingBuilder> CreateAsync(params string[] args) =>
        DistributedApplicationTestingBuilder.CreateAsync<Projects.TokenRouter_AppHost>(args);

    private static ProjectResource Project(IDistributedApplicationTestingBuilder builder, string name) =>
        Assert.Single(builder.Resources.OfType<ProjectResource>(), p => p.Name == name);

    /// <summary>Environment as the manifest would write it: references appear as expressions such as <c>{redis.connectionString}</c>.</summary>
    private static async Task<IReadOnlyDictionary<string, string>> ManifestEnvironmentAsync(IResource resource) =>
        (await PublishConfigurationAsync(resource)).EnvironmentVariables.ToDictionary(e => e.Key, e => e.Value);

    private static async Task<string[]> ManifestArgumentsAsync(IResource resource) =>
        (await PublishConfigurationAsync(resource)).Arguments.Select(a => a.Value).ToArray();

    private static async Task<IExecutionConfigurationResult> PublishConfigurationAsync(IResource resource)
    {
        var result = await ExecutionConfigurationBuilder.Create(resource)
            .WithEnvironmentVariablesConfig()
            .WithArgumentsConfig()
            .BuildAsync(new DistributedApplicationExecutionContext(DistributedApplicationOperation.Publish), NullLogger.Instance, CancellationToken.None);
        Assert.Null(result.Exception);
        return result;
    }

    private static string DefaultAsManifestJson(ParameterResource parameter)
    {
        Assert.NotNull(parameter.Default);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            parameter.Default.WriteToManifest(new ManifestPublishingContext(
                new DistributedApplicationExecutionContext(DistributedApplicationOperation.Publish), "manifest.json", writer, CancellationToken.None));
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string[] WaitedFor(IResource resource) =>
        resource.Annotations.OfType<WaitAnnotation>().Select(w => w.Resource.Name).Distinct().ToArray();
}
