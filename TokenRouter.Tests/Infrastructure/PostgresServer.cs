using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// A real, throwaway PostgreSQL server for integration tests: <c>initdb</c> in a temp directory, trust auth, listening
/// only on 127.0.0.1 on a free port, durability off for speed. Start-up costs seconds, so the whole test run shares
/// one (<see cref="GetSharedAsync"/>) and each test class isolates itself with its own database
/// (<see cref="CreateDatabaseAsync"/>).
/// </summary>
/// <remarks>
/// Binaries: <c>$TOKENROUTER_TEST_PG_BIN</c> if set, else the highest <c>/usr/lib/postgresql/&lt;version&gt;/bin</c>.
/// PostgreSQL refuses to run as root, so under root the server runs as the <c>postgres</c> user via <c>setpriv</c>.
/// A missing binary fails the test with what to install; these tests never skip.
/// </remarks>
public sealed class PostgresServer : IAsyncDisposable
{
    public const string BinDirectoryVariable = "TOKENROUTER_TEST_PG_BIN";
    private const string SuperUser = "postgres";
    private const string OsUser = "postgres";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private static readonly Lazy<Task<PostgresServer>> Shared = new(StartSharedAsync);
    private static int s_databaseCounter;

    private LocalServerProcess _process;
    private readonly string _workDirectory;
    private bool _isShared;
    private int _disposed;

    private PostgresServer(LocalServerProcess process, string workDirectory, string binDirectory, int port)
    {
        _process = process;
        _workDirectory = workDirectory;
        BinDirectory = binDirectory;
        Port = port;
        ConnectionString = BuildConnectionString("postgres");
    }

    /// <summary>Directory of the <c>postgres</c>/<c>initdb</c> binaries in use.</summary>
    public string BinDirectory { get; }

    public int Port { get; }

    /// <summary>Connection string to the <c>postgres</c> maintenance database as the superuser.</summary>
    public string ConnectionString { get; }

    /// <summary>How long initdb + start + first successful query took.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>The one server of this test run, started on first use and stopped when the test process exits.</summary>
    public static Task<PostgresServer> GetSharedAsync() => Shared.Value;

    /// <summary>
    /// Creates a new, empty database and returns its connection string. The name is sanitised and suffixed with a
    /// counter, so calling twice with the same name still yields two distinct databases.
    /// </summary>
    public async Task<string> CreateDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        var database = UniqueDatabaseName(name);
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return BuildConnectionString(database);
    }

    /// <summary>
    /// Stops this server (clients see their connections end); <see cref="RestartAsync"/> starts it again on the same port
    /// and data. Only for a server of the test's own (<see cref="StartAsync"/>), never the shared one.
    /// </summary>
    public async Task StopAsync()
    {
        if (_isShared) throw new InvalidOperationException("The shared PostgreSQL server is used by other test classes; start your own.");
        await _process.StopAsync("INT", TimeSpan.FromSeconds(10));
    }

    /// <summary>Starts the server again after <see cref="StopAsync"/>, with its data, on the same port; waits until it answers.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        _process.Dispose();
        _process = LocalServerProcess.Start(Path.Combine(BinDirectory, "postgres"), ServerArguments(Path.Combine(_workDirectory, "data"), Port, _workDirectory),
            LocalServerProcess.IsRoot ? OsUser : null, _workDirectory, stopSignal: "INT");
        if (!await WaitUntilReadyAsync(cancellationToken))
            throw new InvalidOperationException($"PostgreSQL did not come back on 127.0.0.1:{Port}:\n{_process.RecentOutput}");
    }

    private static string[] ServerArguments(string dataDirectory, int port, string workDirectory) =>
    [
        "-D", dataDirectory, "-p", port.ToString(CultureInfo.InvariantCulture),
        "-h", "127.0.0.1", "-k", workDirectory,
        "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
        // Every test class holds its own connection pool; the default 100 runs out.
        "-c", "max_connections=300",
    ];

    /// <summary>Starts a separate server (most tests want <see cref="GetSharedAsync"/> instead).</summary>
    public static async Task<PostgresServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var binDirectory = FindBinDirectory();
        var runAs = LocalServerProcess.IsRoot ? OsUser : null;
        var clock = Stopwatch.StartNew();
        var workDirectory = LocalServerProcess.CreateWorkDirectory("tokenrouter-test-pg-", "postgres");
        try
        {
            var dataDirectory = Path.Combine(workDirectory, "data");
            if (runAs is not null)
            {
                await ChownAsync(workDirectory, runAs);
            }

            await LocalServerProcess.RunToCompletionAsync(
                Path.Combine(binDirectory, "initdb"),
                ["-D", dataDirectory, "-U", SuperUser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                runAs, workDirectory, StartTimeout);

            // A port can be taken between probing and binding; a few attempts make that race harmless.
            for (var attempt = 1; ; attempt++)
            {
                var port = LocalServerProcess.FreeTcpPort();
                var process = LocalServerProcess.Start(
                    Path.Combine(binDirectory, "postgres"), ServerArguments(dataDirectory, port, workDirectory),
                    runAs, workDirectory, stopSignal: "INT");

                var server = new PostgresServer(process, workDirectory, binDirectory, port);
                if (await server.WaitUntilReadyAsync(cancellationToken))
                {
                    server.StartupTime = clock.Elapsed;
                    return server;
                }

                var output = process.RecentOutput;
                process.Dispose();
                if (attempt >= 3 || !output.Contains("could not bind", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InvalidOperationException(
                        $"PostgreSQL from {binDirectory} did not accept queries on 127.0.0.1:{port} within {StartTimeout}. " +
                        $"Server output:\n{output}");
                }
            }
        }
        catch
        {
            LocalServerProcess.DeleteDirectory(workDirectory);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        NpgsqlConnection.ClearAllPools();
        await _process.StopAsync("INT", TimeSpan.FromSeconds(10)); // SIGINT = fast shutdown: ends the backends too
        _process.Dispose();
        LocalServerProcess.DeleteDirectory(_workDirectory);
    }

    private string BuildConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = SuperUser,
        Database = database,
        IncludeErrorDetail = true,
    }.ConnectionString;

    private async Task<bool> WaitUntilReadyAsync(CancellationToken cancellationToken)
    {
        var probe = new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false, Timeout = 2 }.ConnectionString;
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            if (_process.HasExited)
            {
                return false;
            }
            try
            {
                await using var connection = new NpgsqlConnection(probe);
                await connection.OpenAsync(cancellationToken);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                if (await command.ExecuteScalarAsync(cancellationToken) is 1)
                {
                    return true;
                }
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                // Not listening yet, or still starting up ("the database system is starting up").
            }
            await Task.Delay(50, cancellationToken);
        }
        return false;
    }

    private static async Task<PostgresServer> StartSharedAsync()
    {
        var server = await StartAsync();
        server._isShared = true;
        // xunit v2 has no assembly fixture. This handler stops the server when the test process exits normally;
        // when the runner kills the test process instead, the watchdog started with the server does it.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return server;
    }

    private static string FindBinDirectory()
    {
        var configured = Environment.GetEnvironmentVariable(BinDirectoryVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return File.Exists(Path.Combine(configured, "postgres")) && File.Exists(Path.Combine(configured, "initdb"))
                ? configured
                : throw new InvalidOperationException(
                    $"{BinDirectoryVariable}={configured} does not contain the 'postgres' and 'initdb' binaries.");
        }

        const string root = "/usr/lib/postgresql";
        var candidates = Directory.Exists(root)
            ? Directory.EnumerateDirectories(root)
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(c => File.Exists(Path.Combine(c.Dir, "postgres")) && File.Exists(Path.Combine(c.Dir, "initdb")))
                .OrderByDescending(c => c.Version)
                .ToList()
            : [];

        if (candidates.Count == 0)
        {
            throw new InvalidOperationException(
                "The integration tests need a real PostgreSQL server, but no binaries were found under " +
                $"{root}/<version>/bin. Install them (Debian/Ubuntu: 'apt-get install -y postgresql', which provides " +
                $"initdb and postgres), or set {BinDirectoryVariable} to a directory that holds 'initdb' and 'postgres'.");
        }
        if (LocalServerProcess.IsRoot && !UserExists(OsUser))
        {
            throw new InvalidOperationException(
                $"The tests run as root, and PostgreSQL refuses to run as root, so they run it as the '{OsUser}' user, " +
                $"which does not exist here. Create it (installing the 'postgresql' package does), or run the tests as a non-root user.");
        }
        return candidates[0].Dir;
    }

    private static bool UserExists(string user) =>
        File.Exists("/etc/passwd") && File.ReadLines("/etc/passwd").Any(l => l.StartsWith(user + ":", StringComparison.Ordinal));

    private static Task ChownAsync(string directory, string user) =>
        LocalServerProcess.RunToCompletionAsync("chown", ["-R", $"{user}:{user}", directory], null, directory, TimeSpan.FromSeconds(30));

    private static string UniqueDatabaseName(string name)
    {
        var sb = new StringBuilder();
        foreach (var c in name.ToLowerInvariant())
        {
            sb.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' ? c : '_');
        }
        if (sb.Length == 0 || char.IsDigit(sb[0]))
        {
            sb.Insert(0, "db_");
        }
        var suffix = "_" + Interlocked.Increment(ref s_databaseCounter).ToString(CultureInfo.InvariantCulture);
        var stem = sb.ToString();
        return (stem.Length + suffix.Length > 63 ? stem[..(63 - suffix.Length)] : stem) + suffix;
    }
}
