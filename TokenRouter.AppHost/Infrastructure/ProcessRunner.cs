using System.Diagnostics;

namespace TokenRouter.AppHost.Infrastructure;

/// <summary>Runs a short-lived tool (docker info, chown, initdb) with a timeout, capturing its output.</summary>
internal static class ProcessRunner
{
    public sealed record Result(int ExitCode, string Output, bool TimedOut);

    public static async Task<Result> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timeoutSource.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // A hung `docker info` (daemon socket that never answers) must not hold up start-up.
            process.Kill(entireProcessTree: true);
            cancellationToken.ThrowIfCancellationRequested();
            return new Result(-1, "", TimedOut: true);
        }

        var output = (await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false)).Trim();
        return new Result(process.ExitCode, output, TimedOut: false);
    }

    public static string? FindOnPath(string executable, string? pathVariable) =>
        (pathVariable ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, executable))
            .FirstOrDefault(File.Exists);
}

/// <summary>Finds a container runtime that actually answers, not merely an installed CLI (a docker client without a daemon is common).</summary>
internal static class ContainerRuntimeProbe
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <param name="configuredRuntime">ASPIRE_CONTAINER_RUNTIME when set: only that runtime is asked, since DCP will use it.</param>
    public static string? FindAnsweringRuntime(string? configuredRuntime, string? pathVariable)
    {
        string[] candidates = string.IsNullOrWhiteSpace(configuredRuntime) ? ["docker", "podman"] : [configuredRuntime.Trim()];
        foreach (var runtime in candidates)
        {
            if (ProcessRunner.FindOnPath(runtime, pathVariable) is not { } path)
            {
                continue;
            }

            try
            {
                var result = ProcessRunner.RunAsync(path, ["info"], Timeout).GetAwaiter().GetResult();
                if (result is { TimedOut: false, ExitCode: 0 })
                {
                    return runtime;
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Not runnable (permissions, broken install): treat as absent.
            }
        }

        return null;
    }
}
