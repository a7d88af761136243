using TokenRouter.AppHost.Infrastructure;

namespace TokenRouter.Tests.AppHost;

/// <summary>The container-or-local-or-none decision and the local binary lookup, with the machine probes replaced.</summary>
public sealed class InfrastructureSelectionTests : IDisposable
{
    private static readonly LocalBinaries Installed = new("/usr/lib/postgresql/15/bin", "15", "/usr/bin/redis-server");
    private readonly string _root = Directory.CreateTempSubdirectory("tokenrouter-apphost-tests-").FullName;

    [Fact]
    public void Auto_prefers_containers_when_a_runtime_answers()
    {
        var choice = InfrastructureSelector.Choose(null, isPublishMode: false, () => "docker", () => Installed);

        Assert.Equal(InfrastructureMode.Containers, choice.Mode);
        Assert.Contains("docker", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Auto_falls_back_to_local_processes_when_postgres_and_redis_server_are_installed()
    {
        var choice = InfrastructureSelector.Choose("auto", isPublishMode: false, () => null, () => Installed);

        Assert.Equal(InfrastructureMode.Local, choice.Mode);
        Assert.Same(Installed, choice.Binaries);
        Assert.Contains("PostgreSQL 15", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Auto_runs_without_infrastructure_when_nothing_is_available_and_says_what_is_missing()
    {
        var choice = InfrastructureSelector.Choose(null, isPublishMode: false, () => null, () => Installed with { RedisServer = null });

        Assert.Equal(InfrastructureMode.None, choice.Mode);
        Assert.Contains("redis-server", choice.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("PostgreSQL (", choice.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("containers", InfrastructureMode.Containers)]
    [InlineData("Local", InfrastructureMode.Local)]
    [InlineData(" none ", InfrastructureMode.None)]
    public void Configured_mode_wins_without_probing_for_a_container_runtime(string configured, InfrastructureMode expected)
    {
        var choice = InfrastructureSelector.Choose(configured, isPublishMode: false,
            () => throw new InvalidOperationException("must not probe"), () => Installed);

        Assert.Equal(expected, choice.Mode);
        Assert.Contains(InfrastructureSelector.ConfigurationKey, choice.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, InfrastructureMode.Containers)]
    [InlineData("local", InfrastructureMode.Containers)]
    [InlineData("none", InfrastructureMode.None)]
    public void Publishing_describes_containers_unless_the_gateway_alone_is_requested(string? configured, InfrastructureMode expected)
    {
        var choice = InfrastructureSelector.Choose(configured, isPublishMode: true,
            () => throw new InvalidOperationException("must not probe"), () => throw new InvalidOperationException("must not probe"));

        Assert.Equal(expected, choice.Mode);
    }

    [Fact]
    public void Unknown_mode_is_rejected_with_the_accepted_values()
    {
        var error = Assert.Throws<InvalidOperationException>(() =>
            InfrastructureSelector.Choose("kubernetes", isPublishMode: false, () => null, () => Installed));

        Assert.Contains("auto, containers, local, none", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Locator_picks_the_highest_complete_postgres_install_and_redis_from_path()
    {
        var postgresRoot = Path.Combine(_root, "postgresql");
        FakePostgres(Path.Combine(postgresRoot, "9.6", "bin"));
        FakePostgres(Path.Combine(postgresRoot, "15", "bin"));
        FakePostgres(Path.Combine(postgresRoot, "13", "bin"));
        Touch(Path.Combine(postgresRoot, "17", "bin", "postgres")); // no initdb: incomplete, ignored
        var redisDir = Path.Combine(_root, "redis-bin");
        Touch(Path.Combine(redisDir, "redis-server"));

        var found = LocalBinaries.Find(string.Join(Path.PathSeparator, Path.Combine(_root, "empty"), redisDir), postgresRoot);

        Assert.Equal(Path.Combine(postgresRoot, "15", "bin"), found.PostgresBinDirectory);
        Assert.Equal("15", found.PostgresMajorVersion);
        Assert.Equal(Path.Combine(redisDir, "redis-server"), found.RedisServer);
        Assert.True(found.IsComplete);
    }

    [Fact]
    public void Locator_falls_back_to_postgres_on_path()
    {
        var pathDir = Path.Combine(_root, "bin");
        FakePostgres(pathDir);

        var found = LocalBinaries.Find(pathDir, Path.Combine(_root, "no-such-root"));

        Assert.Equal(pathDir, found.PostgresBinDirectory);
        Assert.Null(found.RedisServer);
        Assert.False(found.IsComplete);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static void FakePostgres(string binDirectory)
    {
        Touch(Path.Combine(binDirectory, "postgres"));
        Touch(Path.Combine(binDirectory, "initdb"));
    }

    private static void Touch(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "");
    }
}
