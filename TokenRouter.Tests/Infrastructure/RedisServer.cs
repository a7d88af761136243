using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// A real <c>redis-server</c> for integration tests, on 127.0.0.1 and a free port, with persistence off.
/// The run shares one (<see cref="GetSharedAsync"/>): isolate with distinct keys or a distinct database index
/// (<see cref="ConnectionStringForDatabase"/>). A test that needs to flush everything or to take Redis away and back
/// ("Redis blips") starts its own with <see cref="StartNewAsync"/> and uses <see cref="StopAsync"/> /
/// <see cref="StartAsync"/>, which keep the port so clients reconnect to the same address.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    public const string ServerPathVariable = "TOKENROUTER_TEST_REDIS_SERVER";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly Lazy<Task<RedisServer>> Shared = new(StartSharedAsync);

    private readonly string _serverPath;
    private readonly string _workDirectory;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private LocalServerProcess? _process;
    private int _disposed;

    private RedisServer(string serverPath, string workDirectory, int port, bool isShared)
    {
        _serverPath = serverPath;
        _workDirectory = workDirectory;
        Port = port;
        IsShared = isShared;
    }

    public int Port { get; }

    /// <summary>StackExchange.Redis configuration string: <c>127.0.0.1:&lt;port&gt;</c>.</summary>
    public string ConnectionString => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The shared instance refuses <see cref="StopAsync"/>: other test classes are using it.</summary>
    public bool IsShared { get; }

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>How long the first start took until PING answered.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>The one server of this test run, started on first use and stopped when the test process exits.</summary>
    public static Task<RedisServer> GetSharedAsync() => Shared.Value;

    /// <summary>Starts a server of the caller's own, which it may flush, stop and restart. Dispose it.</summary>
    public static Task<RedisServer> StartNewAsync(CancellationToken cancellationToken = default) =>
        StartCoreAsync(isShared: false, cancellationToken);

    /// <summary>Connection string that selects database <paramref name="database"/> (0–15) by default.</summary>
    public string ConnectionStringForDatabase(int database) =>
        $"{ConnectionString},defaultDatabase={database.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Starts the server again on the same port after <see cref="StopAsync"/>; waits until it answers PING.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        await _lifecycle.WaitAsync(cancellationToken);
        try
        {
            if (IsRunning)
            {
                return;
            }
            _process?.Dispose();
            _process = LocalServerProcess.Start(
                _serverPath,
                [
                    "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", _workDirectory, "--daemonize", "no",
                ],
                runAsUser: null, _workDirectory, stopSignal: "TERM");

            if (!await WaitUntilReadyAsync(_process, cancellationToken))
            {
                var output = _process.RecentOutput;
                _process.Dispose();
                _process = null;
                throw new InvalidOperationException(
                    $"redis-server ({_serverPath}) did not answer PING on {ConnectionString} within {StartTimeout}. " +
                    $"Server output:\n{output}");
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Stops the server (clients see the connection drop); <see cref="StartAsync"/> brings it back on the same port.</summary>
    public async Task StopAsync()
    {
        if (IsShared)
        {
            throw new InvalidOperationException(
                "The shared Redis server is used by other test classes; start your own with RedisServer.StartNewAsync() to stop it.");
        }
        await _lifecycle.WaitAsync();
        try
        {
            if (_process is not null)
            {
                await _process.StopAsync("TERM", TimeSpan.FromSeconds(5));
                _process.Dispose();
                _process = null;
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>FLUSHALL. On the shared server this wipes other test classes' keys: only flush your own server.</summary>
    public async Task FlushAllAsync(CancellationToken cancellationToken = default)
    {
        var reply = await SendCommandAsync(["FLUSHALL"], cancellationToken);
        if (reply != "+OK")
        {
            throw new InvalidOperationException($"FLUSHALL answered '{reply}'.");
        }
    }

    /// <summary>Sends one command over a fresh connection and returns the first line of the reply (e.g. <c>+PONG</c>).</summary>
    public async Task<string> SendCommandAsync(IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", Port, cancellationToken);
        var stream = client.GetStream();

        var request = new StringBuilder().Append('*').Append(command.Count).Append("\r\n");
        foreach (var part in command)
        {
            request.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }
        await stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToString()), cancellationToken);

        var reply = new StringBuilder();
        var buffer = new byte[1];
        while (await stream.ReadAsync(buffer, cancellationToken) == 1 && buffer[0] != '\n')
        {
            if (buffer[0] != '\r')
            {
                reply.Append((char)buffer[0]);
            }
        }
        return reply.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (_process is not null)
        {
            await _process.StopAsync("TERM", TimeSpan.FromSeconds(5));
            _process.Dispose();
            _process = null;
        }
        LocalServerProcess.DeleteDirectory(_workDirectory);
        _lifecycle.Dispose();
    }

    private static async Task<RedisServer> StartCoreAsync(bool isShared, CancellationToken cancellationToken)
    {
        var serverPath = FindServer();
        var clock = Stopwatch.StartNew();
        var workDirectory = LocalServerProcess.CreateWorkDirectory("tokenrouter-test-redis-", "redis-server");
        // A port can be taken between probing and binding; a few attempts make that race harmless.
        for (var attempt = 1; ; attempt++)
        {
            var server = new RedisServer(serverPath, workDirectory, LocalServerProcess.FreeTcpPort(), isShared);
            try
            {
                await server.StartAsync(cancellationToken);
                server.StartupTime = clock.Elapsed;
                return server;
            }
            catch (InvalidOperationException e) when (attempt < 3 && e.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
            }
            catch
            {
                LocalServerProcess.DeleteDirectory(workDirectory);
                throw;
            }
        }
    }

    private static async Task<RedisServer> StartSharedAsync()
    {
        var server = await StartCoreAsync(isShared: true, CancellationToken.None);
        // xunit v2 has no assembly fixture. This handler stops the server when the test process exits normally;
        // when the runner kills the test process instead, the watchdog started with the server does it.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return server;
    }

    private async Task<bool> WaitUntilReadyAsync(LocalServerProcess process, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout && !process.HasExited)
        {
            try
            {
                if (await SendCommandAsync(["PING"], cancellationToken) == "+PONG")
                {
                    return true;
                }
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                // Not listening yet.
            }
            await Task.Delay(20, cancellationToken);
        }
        return false;
    }

    private static string FindServer()
    {
        var configured = Environment.GetEnvironmentVariable(ServerPathVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return File.Exists(configured)
                ? configured
                : throw new InvalidOperationException($"{ServerPathVariable}={configured} does not exist.");
        }

        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/bin", "/usr/local/bin", "/usr/sbin"])
            .Select(dir => Path.Combine(dir, "redis-server"))
            .FirstOrDefault(File.Exists);
        return path ?? throw new InvalidOperationException(
            "The integration tests need a real Redis server, but 'redis-server' is not on PATH. Install it " +
            "(Debian/Ubuntu: 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server'), " +
            $"or set {ServerPathVariable} to its path.");
    }
}
