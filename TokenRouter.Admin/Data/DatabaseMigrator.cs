using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using Polly.Retry;
using TokenRouter.Admin.Configuration;

namespace TokenRouter.Admin.Data;

/// <summary>
/// Applies EF Core migrations. Admin is the only process that does (the gateway never touches Postgres); it
/// first waits, bounded, for PostgreSQL to answer, because under an orchestrator the database often starts later.
/// </summary>
public sealed partial class DatabaseMigrator(
    AdminDbContext db,
    IOptions<AdminStartupOptions> options,
    TimeProvider time,
    ILogger<DatabaseMigrator> logger)
{
    private static readonly ResiliencePropertyKey<long> WaitStarted = new("tokenrouter.database-wait.started");
    private static readonly ResiliencePropertyKey<NpgsqlConnectionStringBuilder> WaitTarget = new("tokenrouter.database-wait.target");

    private readonly ResiliencePipeline _waitForDatabase = CreateWaitPipeline(options.Value, time, logger);

    /// <summary>
    /// Probes again after <see cref="AdminStartupOptions.DatabaseRetryDelay"/> (constant) while the server does not answer,
    /// as long as the next probe still starts within <see cref="AdminStartupOptions.DatabaseWaitTimeout"/>.
    /// </summary>
    internal static ResiliencePipeline CreateWaitPipeline(AdminStartupOptions settings, TimeProvider time, ILogger logger) =>
        new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is NpgsqlException or TimeoutException
                    && !args.Context.CancellationToken.IsCancellationRequested
                    && time.GetElapsedTime(args.Context.Properties.GetValue(WaitStarted, time.GetTimestamp())) + settings.DatabaseRetryDelay
                        < settings.DatabaseWaitTimeout),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Constant,
                Delay = settings.DatabaseRetryDelay,
                OnRetry = args =>
                {
                    var target = args.Context.Properties.GetValue(WaitTarget, new NpgsqlConnectionStringBuilder());
                    LogWaiting(logger, target.Host, target.Port, args.AttemptNumber + 1, args.RetryDelay, args.Outcome.Exception!.Message);
                    return default;
                },
            })
            .Build();

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        if (!await WaitForDatabaseAsync(cancellationToken))
        {
            await CreateDatabaseAsync(cancellationToken);
        }

        // Npgsql finds a missing history table by failing a SELECT, which EF logs as an error on every first start
        // (npgsql/efcore.pg#3407); creating the table first keeps the log free of false alarms.
        await db.GetService<IHistoryRepository>().CreateIfNotExistsAsync(cancellationToken);
        var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
        // MigrateAsync takes EF's migration lock, so even two Admin replicas cannot apply the same migration twice.
        await db.Database.MigrateAsync(cancellationToken);
        LogMigrated(logger, pending.Count, pending.Count == 0 ? "-" : string.Join(", ", pending));
    }

    private async Task CreateDatabaseAsync(CancellationToken cancellationToken)
    {
        try
        {
            await db.GetService<IRelationalDatabaseCreator>().CreateAsync(cancellationToken);
            LogCreatedDatabase(logger, db.Database.GetDbConnection().Database);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateDatabase)
        {
            // Another Admin replica created it first.
        }
    }

    /// <summary>Waits until the server answers; returns false when it does but the database does not exist yet.</summary>
    private async Task<bool> WaitForDatabaseAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var connectionString = db.Database.GetConnectionString()
            ?? throw new InvalidOperationException(
                "No PostgreSQL connection string: set ConnectionStrings:tokenrouter or DATABASE_URL.");
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(WaitStarted, time.GetTimestamp());
        context.Properties.Set(WaitTarget, target);
        try
        {
            return await _waitForDatabase.ExecuteAsync(static (ctx, probe) => ProbeAsync(probe, ctx.CancellationToken), context, connectionString);
        }
        catch (Exception e) when ((e is NpgsqlException or TimeoutException) && !cancellationToken.IsCancellationRequested)
        {
            LogGaveUp(logger, target.Host, target.Port, target.Database, settings.DatabaseWaitTimeout, e);
            throw new InvalidOperationException(
                $"PostgreSQL at {target.Host}:{target.Port} (database '{target.Database}') did not answer within " +
                $"{settings.DatabaseWaitTimeout}. Check ConnectionStrings:tokenrouter or DATABASE_URL and that the " +
                "server is running; Admin does not serve without its database.", e);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>One connection attempt; false when the server answers but the database does not exist yet.</summary>
    private static async ValueTask<bool> ProbeAsync(string connectionString, CancellationToken cancellationToken)
    {
        try
        {
            // A raw probe with a short timeout: EF's retrying strategy would stretch each attempt to minutes.
            var probe = new NpgsqlConnectionStringBuilder(connectionString) { Timeout = 5, Pooling = false };
            await using var connection = new NpgsqlConnection(probe.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(cancellationToken);
            return true;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidCatalogName)
        {
            return false; // The server answers; the database is still to be created.
        }
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "PostgreSQL at {Host}:{Port} is not answering yet (attempt {Attempt}); retrying in {Delay}: {Reason}")]
    private static partial void LogWaiting(ILogger logger, string? host, int port, int attempt, TimeSpan delay, string reason);

    [LoggerMessage(Level = LogLevel.Critical,
        Message = "PostgreSQL at {Host}:{Port} (database {Database}) did not answer within {Timeout}; Admin cannot start")]
    private static partial void LogGaveUp(ILogger logger, string? host, int port, string? database, TimeSpan timeout, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Created database {Database}")]
    private static partial void LogCreatedDatabase(ILogger logger, string database);

    [LoggerMessage(Level = LogLevel.Information, Message = "Database schema is up to date ({Count} migrations applied: {Migrations})")]
    private static partial void LogMigrated(ILogger logger, int count, string migrations);
}
