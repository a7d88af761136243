using Microsoft.Extensions.Logging;
using Npgsql;

namespace TokenRouter.AppHost.Infrastructure;

/// <summary>
/// Prepares and describes the local PostgreSQL cluster: where its data lives, how it is launched (dropping to the
/// <c>postgres</c> user when the AppHost runs as root, because postgres refuses to run as root), an idempotent
/// <c>initdb</c> and creation of the application database.
/// </summary>
internal sealed class LocalPostgresSetup
{
    public const string DataDirectoryKey = "TokenRouter:Local:DataDirectory";
    private const string PostgresUser = "postgres";

    private readonly string _binDirectory;

    public LocalPostgresSetup(string? binDirectory, string? majorVersion, string dataRoot, bool runningAsRoot)
    {
        // Forced local mode on a machine without PostgreSQL still builds a model; the start then fails visibly.
        _binDirectory = binDirectory ?? "";
        DataRoot = dataRoot;
        DataDirectory = Path.Combine(dataRoot, majorVersion is null ? "pgdata" : $"pgdata-{majorVersion}");
        RunAsPostgresUser = runningAsRoot;
    }

    public string DataRoot { get; }

    public string DataDirectory { get; }

    public bool RunAsPostgresUser { get; }

    public string Command => RunAsPostgresUser ? "setpriv" : Tool("postgres");

    /// <summary>Arguments that precede postgres' own (the setpriv prefix and the postgres path when dropping privileges).</summary>
    public IReadOnlyList<string> CommandPrefix => RunAsPostgresUser ? [.. SetprivArguments, Tool("postgres")] : [];

    private static string[] SetprivArguments => [$"--reuid={PostgresUser}", $"--regid={PostgresUser}", "--init-groups"];

    /// <summary>
    /// A per-user folder that the server process can reach: <c>~/.tokenrouter</c> normally; as root the server runs
    /// as <c>postgres</c>, which cannot traverse <c>/root</c>, so the data goes under <c>$TMPDIR</c> or <c>/var/tmp</c>.
    /// </summary>
    public static string ResolveDataRoot(string? configured, bool runningAsRoot)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Path.GetFullPath(configured);
        }

        if (runningAsRoot)
        {
            var temp = Environment.GetEnvironmentVariable("TMPDIR");
            return Path.Combine(string.IsNullOrEmpty(temp) ? "/var/tmp" : temp, "tokenrouter");
        }

        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".tokenrouter");
    }

    public static bool IsRunningAsRoot() => OperatingSystem.IsLinux() && Environment.UserName == "root";

    /// <summary>
    /// Runs initdb once; later runs reuse the cluster. initdb writes into a staging folder that is renamed into place
    /// only on success, so an interrupted first run never leaves a half-initialized data directory behind.
    /// </summary>
    public async Task EnsureDataDirectoryAsync(ILogger logger, CancellationToken cancellationToken)
    {
        if (File.Exists(Path.Combine(DataDirectory, "PG_VERSION")))
        {
            logger.LogInformation("Reusing the PostgreSQL data directory {DataDirectory}.", DataDirectory);
            return;
        }

        if (Directory.Exists(DataDirectory))
        {
            if (Directory.EnumerateFileSystemEntries(DataDirectory).Any())
            {
                throw new InvalidOperationException(
                    $"{DataDirectory} exists but is not a PostgreSQL data directory (no PG_VERSION). Remove it, or set {DataDirectoryKey} to another folder.");
            }

            Directory.Delete(DataDirectory);
        }

        // The root folder must be traversable by the postgres user; the cluster itself must be private (initdb insists).
        CreateDirectory(DataRoot, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                  UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        var staging = DataDirectory + ".initdb-tmp";
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }

        CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (RunAsPostgresUser)
        {
            await RunAsync("chown", [$"{PostgresUser}:{PostgresUser}", staging], TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        }

        logger.LogInformation("Initializing a PostgreSQL cluster in {DataDirectory} (trust authentication, 127.0.0.1 only).", DataDirectory);
        string[] initdb = [Tool("initdb"), "-D", staging, "-U", PostgresUser, "--auth=trust", "-E", "UTF8", "--no-locale"];
        if (RunAsPostgresUser)
        {
            await RunAsync("setpriv", [.. SetprivArguments, .. initdb], TimeSpan.FromMinutes(2), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await RunAsync(initdb[0], initdb[1..], TimeSpan.FromMinutes(2), cancellationToken).ConfigureAwait(false);
        }

        Directory.Move(staging, DataDirectory);
    }

    /// <summary>Creates <paramref name="database"/> if the server does not have it yet.</summary>
    public static async Task EnsureDatabaseAsync(IResourceWithConnectionString server, string database, ILogger logger, CancellationToken cancellationToken)
    {
        var connectionString = await server.GetConnectionStringAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"The connection string of '{server.Name}' is not available.");

        await using var connection = new NpgsqlConnection(Unpooled(connectionString));
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);

        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection);
        exists.Parameters.Add(new NpgsqlParameter { Value = database });
        if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null)
        {
            return;
        }

        // CREATE DATABASE takes no parameters; the name is a quoted identifier from our own constant.
        await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", connection);
        await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        logger.LogInformation("Created the database {Database}.", database);
    }

    /// <summary>AppHost-side connections must not linger in a pool: postgres' shutdown on SIGTERM waits for open sessions.</summary>
    public static string Unpooled(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 5 }.ConnectionString;

    private static void CreateDirectory(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, mode);
        }
    }

    private string Tool(string name) => _binDirectory.Length == 0 ? name : Path.Combine(_binDirectory, name);

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var result = await ProcessRunner.RunAsync(fileName, arguments, timeout, cancellationToken).ConfigureAwait(false);
        if (result.TimedOut || result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"'{fileName} {string.Join(' ', arguments)}' {(result.TimedOut ? "timed out" : $"exited with {result.ExitCode}")}: {result.Output}");
        }
    }
}
