namespace TokenRouter.AppHost.Infrastructure;

/// <summary>How Postgres and Redis are provided to the apps. The projects are identical in every mode.</summary>
public enum InfrastructureMode
{
    /// <summary>Postgres and Redis containers (AddPostgres/AddRedis); always used for publishing.</summary>
    Containers,

    /// <summary>Locally installed postgres and redis-server run as executables, for machines without a container engine.</summary>
    Local,

    /// <summary>No Postgres, Redis or Admin: the gateway runs alone on its embedded in-memory stores.</summary>
    None,
}

/// <summary>The chosen mode and the one-line reason that is logged at start-up.</summary>
public sealed record InfrastructureChoice(InfrastructureMode Mode, string Reason, LocalBinaries Binaries);

/// <summary>
/// Picks the infrastructure mode. Pure over its inputs (the probes are passed in) so the rules are unit-testable:
/// explicit configuration wins; publishing always describes containers so the manifest does not depend on this
/// machine; otherwise containers when a runtime answers, local processes when the binaries exist, else none.
/// </summary>
public static class InfrastructureSelector
{
    public const string ConfigurationKey = "TokenRouter:Infrastructure";

    public static InfrastructureChoice Choose(
        string? requested,
        bool isPublishMode,
        Func<string?> findAnsweringContainerRuntime,
        Func<LocalBinaries> findLocalBinaries)
    {
        var forced = Parse(requested);

        if (isPublishMode)
        {
            return forced == InfrastructureMode.None
                ? new(InfrastructureMode.None, $"{ConfigurationKey}=none (publishing the gateway alone)", LocalBinaries.Missing)
                : new(InfrastructureMode.Containers, "publish mode: the manifest describes container resources, independent of this machine", LocalBinaries.Missing);
        }

        switch (forced)
        {
            case InfrastructureMode.Containers:
                return new(InfrastructureMode.Containers, $"forced by {ConfigurationKey}=containers", LocalBinaries.Missing);
            case InfrastructureMode.None:
                return new(InfrastructureMode.None, $"forced by {ConfigurationKey}=none", LocalBinaries.Missing);
            case InfrastructureMode.Local:
                var forcedLocal = findLocalBinaries();
                var note = forcedLocal.IsComplete ? forcedLocal.Describe() : $"{forcedLocal.DescribeMissing()}; those resources will fail to start";
                return new(InfrastructureMode.Local, $"forced by {ConfigurationKey}=local ({note})", forcedLocal);
        }

        if (findAnsweringContainerRuntime() is { } runtime)
        {
            return new(InfrastructureMode.Containers, $"container runtime '{runtime}' answered '{runtime} info'", LocalBinaries.Missing);
        }

        var local = findLocalBinaries();
        return local.IsComplete
            ? new(InfrastructureMode.Local, $"no container runtime answered (docker/podman info); {local.Describe()}", local)
            : new(InfrastructureMode.None, $"no container runtime answered (docker/podman info) and {local.DescribeMissing()}", local);
    }

    /// <summary>Returns null for automatic selection; throws on a value that is not a mode so a typo is not silently ignored.</summary>
    public static InfrastructureMode? Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => null,
        "containers" or "container" => InfrastructureMode.Containers,
        "local" => InfrastructureMode.Local,
        "none" => InfrastructureMode.None,
        _ => throw new InvalidOperationException(
            $"{ConfigurationKey} is '{value}'; expected one of: auto, containers, local, none."),
    };
}
