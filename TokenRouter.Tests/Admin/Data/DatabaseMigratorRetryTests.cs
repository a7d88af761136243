using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using TokenRouter.Admin.Configuration;
using TokenRouter.Admin.Data;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Admin.Data;

/// <summary>The start-up wait for PostgreSQL as a Polly retry (constant delay, bounded by the wait timeout), on a fake clock.</summary>
public sealed class DatabaseMigratorRetryTests
{
    private static readonly AdminStartupOptions Settings = new()
    {
        DatabaseRetryDelay = TimeSpan.FromSeconds(2),
        DatabaseWaitTimeout = TimeSpan.FromSeconds(10),
    };

    [Fact]
    public async Task A_server_that_never_answers_is_probed_every_retry_delay_until_the_timeout_then_startup_fails()
    {
        var time = new FakeTimeProvider();
        var logger = new ListLogger<DatabaseMigrator>();
        var nobodyListens = $"Host=127.0.0.1;Port={LocalServerProcess.FreeTcpPort()};Username=postgres;Database=nowhere";
        await using var db = new AdminDbContext(new DbContextOptionsBuilder<AdminDbContext>().UseNpgsql(nobodyListens).Options);
        var migrator = new DatabaseMigrator(db, Options.Create(Settings), time, logger);

        var migrate = migrator.MigrateAsync(CancellationToken.None);
        await BackgroundWork.TrueAsync(() => logger.Count("not answering yet (attempt 1)") == 1, "the first probe never failed");
        time.Advance(TimeSpan.FromSeconds(1.9));
        await Task.Delay(100);
        Assert.Equal(1, logger.Count("not answering yet"));

        // Probes at 0, 2, 4, 6 and 8 s: after the fifth, a sixth would start at 10 s, no longer within the timeout.
        time.Advance(TimeSpan.FromSeconds(0.1));
        for (var attempt = 2; attempt <= 4; attempt++)
        {
            await BackgroundWork.TrueAsync(() => logger.Count($"(attempt {attempt}); retrying in 00:00:02") == 1, $"probe {attempt} never ran");
            time.Advance(Settings.DatabaseRetryDelay);
        }
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => migrate.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Contains("did not answer within 00:00:10", error.Message);
        Assert.IsAssignableFrom<NpgsqlException>(error.InnerException);
        Assert.Equal(4, logger.Count("not answering yet"));
        Assert.Equal(1, logger.Count("did not answer within"));
    }

    [Fact]
    public async Task Only_connection_failures_are_retried()
    {
        var time = new FakeTimeProvider();
        var pipeline = DatabaseMigrator.CreateWaitPipeline(Settings, time, new ListLogger<DatabaseMigrator>());
        var probes = 0;

        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await pipeline.ExecuteAsync<bool>(_ => { probes++; throw new ArgumentException("not a connection failure"); }));

        Assert.Equal(1, probes);
    }

    [Fact]
    public async Task A_probe_failing_twice_is_retried_and_succeeds()
    {
        var time = new FakeTimeProvider();
        var logger = new ListLogger<DatabaseMigrator>();
        var pipeline = DatabaseMigrator.CreateWaitPipeline(Settings, time, logger);
        var probes = 0;

        var run = pipeline.ExecuteAsync(_ => ++probes <= 2 ? throw new NpgsqlException("refused") : ValueTask.FromResult(true)).AsTask();
        for (var attempt = 1; attempt <= 2; attempt++)
        {
            await BackgroundWork.TrueAsync(() => logger.Count($"(attempt {attempt})") == 1, $"probe {attempt} was not logged");
            time.Advance(Settings.DatabaseRetryDelay);
        }

        Assert.True(await run.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(3, probes);
    }
}
