using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;
using TokenRouter.Admin.Configuration;

namespace TokenRouter.Admin.Data;

/// <summary>
/// Applies EF Core migrations. Admin is the only process that does (the gateway never touches Postgres); it
/// first waits, bounded, for PostgreSQL to answer, because under an orchestrator the database often starts later.
/// </summary>
public sealed partial class DatabaseMigrator(
    AdminDbContext db,
    IOptions<AdminStartupOptions> options,
    ILogger<DatabaseMigrator> logger)
{
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
        var clock = Stopwatch.StartNew();

        for (var attempt = 1; ; attempt++)
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
            catch (Exception e) when ((e is NpgsqlException or TimeoutException) && !cancellationToken.IsCancellationRequested)
            {
                if (clock.Elapsed + settings.DatabaseRetryDelay >= settings.DatabaseWaitTimeout)
                {
                    LogGaveUp(logger, target.Host, target.Port, target.Database, settings.DatabaseWaitTimeout, e);
                    throw new InvalidOperationException(
                        $"PostgreSQL at {target.Host}:{target.Port} (database '{target.Database}') did not answer within " +
                        $"{settings.DatabaseWaitTimeout}. Check ConnectionStrings:tokenrouter or DATABASE_URL and that the " +
                        "server is running; Admin does not serve without its database.", e);
                }

                LogWaiting(logger, target.Host, target.Port, attempt, settings.DatabaseRetryDelay, e.Message);
                await Task.Delay(settings.DatabaseRetryDelay, cancellationToken);
            }
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
