using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// Plumbing shared by <see cref="PostgresServer"/> and <see cref="RedisServer"/>: runs a server binary as a child
/// process (optionally as another user), keeps the tail of its output for error messages, stops it with a signal,
/// and removes what a test run that was killed left behind.
/// </summary>
internal sealed class LocalServerProcess : IDisposable
{
    private const int OutputLinesKept = 80;
    private const string OwnerPidFile = "owner.pid";
    private const string ServerPidFile = "server.pid";

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private LocalServerProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public string RecentOutput => string.Join(Environment.NewLine, _output);

    // Test hosts are often ended without running ProcessExit handlers (vstest kills testhost when the run is over;
    // CI timeouts and debuggers do the same), so a server must not depend on the test process to stop it. This
    // watchdog polls the test process and, once it is gone, stops the server and removes its directory. It ends by
    // itself when the server stops first (a normal Dispose or a deliberate Stop).
    private const string WatchdogScript = """
        exec </dev/null >/dev/null 2>&1
        owner=$1; server=$2; signal=$3; directory=$4
        # alive = exists and is not a zombie (an orphan's zombie may never be reaped in a container)
        alive() { state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$state" ] && [ "$state" != Z ]; }
        while alive "$owner"; do
          alive "$server" || exit 0
          sleep 1
        done
        kill -"$signal" "$server" 2>/dev/null
        i=0
        while alive "$server" && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i+1)); done
        kill -KILL "$server" 2>/dev/null
        rm -rf "$directory"
        """;

    /// <summary>
    /// Starts <paramref name="fileName"/> (as <paramref name="runAsUser"/> via setpriv when given). When
    /// <paramref name="stopSignal"/> is given, a watchdog stops the server with it and deletes
    /// <paramref name="workDirectory"/> if this test process dies without cleaning up.
    /// </summary>
    public static LocalServerProcess Start(string fileName, IEnumerable<string> arguments, string? runAsUser,
        string workDirectory, string? stopSignal = null)
    {
        var info = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // never inherit the test runner's stdin
            UseShellExecute = false,
            WorkingDirectory = workDirectory,
        };
        if (runAsUser is null)
        {
            info.FileName = fileName;
        }
        else
        {
            info.FileName = "setpriv";
            info.ArgumentList.Add($"--reuid={runAsUser}");
            info.ArgumentList.Add($"--regid={runAsUser}");
            info.ArgumentList.Add("--init-groups");
            info.ArgumentList.Add(fileName); // setpriv execs: the pid we get is the server's own
        }
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var server = new LocalServerProcess(new Process { StartInfo = info, EnableRaisingEvents = true });
        server._process.OutputDataReceived += (_, e) => server.Keep(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.Keep(e.Data);
        server._process.Start();
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        File.WriteAllText(Path.Combine(workDirectory, ServerPidFile), server.Pid.ToString(CultureInfo.InvariantCulture));
        if (stopSignal is not null)
        {
            StartWatchdog(server.Pid, stopSignal, workDirectory);
        }
        return server;
    }

    private static void StartWatchdog(int serverPid, string stopSignal, string workDirectory)
    {
        var info = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            // Redirected so the watchdog holds none of the test runner's own streams open.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(WatchdogScript);
        info.ArgumentList.Add("tokenrouter-test-watchdog");
        info.ArgumentList.Add(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add(serverPid.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add(stopSignal);
        info.ArgumentList.Add(workDirectory);
        using var watchdog = Process.Start(info);
    }

    /// <summary>Runs a command to completion; throws with its output when it fails.</summary>
    public static async Task RunToCompletionAsync(string fileName, IEnumerable<string> arguments, string? runAsUser,
        string workDirectory, TimeSpan timeout)
    {
        using var process = Start(fileName, arguments, runAsUser, workDirectory);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process._process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new TimeoutException($"'{fileName}' did not finish within {timeout}.\n{process.RecentOutput}");
        }
        if (process._process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"'{fileName} {string.Join(' ', arguments)}' exited with code {process._process.ExitCode}:\n{process.RecentOutput}");
        }
    }

    /// <summary>Asks the server to stop with <paramref name="signal"/> (e.g. "INT", "TERM"); kills it after the grace period.</summary>
    public async Task StopAsync(string signal, TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }
        // .NET can only SIGKILL; a polite signal lets the server stop its own children and remove its files.
        using (var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", Pid.ToString(CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        }))
        {
            if (kill is not null)
            {
                await kill.WaitForExitAsync();
            }
        }

        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            await _process.WaitForExitAsync();
        }
    }

    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        _output.Enqueue(line);
        while (_output.Count > OutputLinesKept && _output.TryDequeue(out _))
        {
        }
    }

    /// <summary>A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it).</summary>
    public static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Whether this process may not run PostgreSQL directly (it refuses to run as root).</summary>
    public static bool IsRoot => Environment.IsPrivilegedProcess;

    /// <summary>Creates a fresh directory for one server, marked with this test process's pid for stale cleanup.</summary>
    public static string CreateWorkDirectory(string prefix, string serverProcessName)
    {
        RemoveStaleWorkDirectories(prefix, serverProcessName);
        var directory = Directory.CreateTempSubdirectory(prefix).FullName;
        File.WriteAllText(Path.Combine(directory, OwnerPidFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        return directory;
    }

    public static void DeleteDirectory(string directory)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }
                return;
            }
            catch (IOException) when (attempt < 4)
            {
                Thread.Sleep(100); // a server that just exited may still be removing its own files
            }
        }
    }

    /// <summary>
    /// A test run that was killed (debugger stop, CI timeout) never ran its cleanup: stop servers whose owning test
    /// process is gone and delete their directories, so they do not pile up across runs.
    /// </summary>
    private static void RemoveStaleWorkDirectories(string prefix, string serverProcessName)
    {
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), prefix + "*"))
        {
            try
            {
                if (!TryReadPid(Path.Combine(directory, OwnerPidFile), out var owner) || IsAlive(owner))
                {
                    continue;
                }
                if (TryReadPid(Path.Combine(directory, ServerPidFile), out var server) && IsAlive(server))
                {
                    using var stale = Process.GetProcessById(server);
                    if (CommandName(server) == serverProcessName) // not a stranger that reused the pid
                    {
                        stale.Kill(entireProcessTree: true);
                        stale.WaitForExit(5000);
                    }
                }
                DeleteDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
            {
                // Best effort: someone else's leftovers must not fail this run.
            }
        }
    }

    /// <summary>The kernel's name for the process (Process.ProcessName follows retitled command lines instead).</summary>
    private static string? CommandName(int pid)
    {
        var comm = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/comm";
        return File.Exists(comm) ? File.ReadAllText(comm).Trim() : null;
    }

    private static bool TryReadPid(string file, out int pid)
    {
        pid = 0;
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out pid);
    }

    /// <summary>Exists and is not a zombie (orphans' zombies may never be reaped in a container).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var afterName = stat.LastIndexOf(") ", StringComparison.Ordinal);
            return afterName > 0 && afterName + 2 < stat.Length && stat[afterName + 2] != 'Z';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // no such process
        }
    }
}
