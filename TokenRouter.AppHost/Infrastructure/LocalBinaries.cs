namespace TokenRouter.AppHost.Infrastructure;

/// <summary>
/// Where the locally installed PostgreSQL (a directory holding both <c>postgres</c> and <c>initdb</c>) and
/// <c>redis-server</c> live. <see cref="PostgresMajorVersion"/> names the data directory, so a newer major
/// version never tries to open an older cluster.
/// </summary>
public sealed record LocalBinaries(string? PostgresBinDirectory, string? PostgresMajorVersion, string? RedisServer)
{
    public const string DefaultPostgresRoot = "/usr/lib/postgresql";

    public static readonly LocalBinaries Missing = new(null, null, null);

    public bool IsComplete => PostgresBinDirectory is not null && RedisServer is not null;

    public string Describe() =>
        $"found PostgreSQL {PostgresMajorVersion ?? "(version unknown)"} in {PostgresBinDirectory} and redis-server at {RedisServer}";

    public string DescribeMissing()
    {
        var missing = new List<string>(2);
        if (PostgresBinDirectory is null) missing.Add($"PostgreSQL (postgres + initdb in {DefaultPostgresRoot}/*/bin or on PATH)");
        if (RedisServer is null) missing.Add("redis-server (on PATH)");
        return missing.Count == 0 ? "all local binaries found" : $"not found: {string.Join(" and ", missing)}";
    }

    /// <summary>
    /// Highest version under <paramref name="postgresRoot"/> first (Debian/Ubuntu layout, several majors can be
    /// installed side by side), then PATH; redis-server from PATH.
    /// </summary>
    public static LocalBinaries Find(string? pathVariable, string postgresRoot = DefaultPostgresRoot)
    {
        var pathDirectories = (pathVariable ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);

        string? binDirectory = null;
        string? major = null;

        if (Directory.Exists(postgresRoot))
        {
            var best = Directory.EnumerateDirectories(postgresRoot)
                .Select(dir => (dir, version: ParseMajorVersion(Path.GetFileName(dir))))
                .Where(c => c.version is not null && HasPostgres(Path.Combine(c.dir, "bin")))
                .OrderByDescending(c => c.version)
                .FirstOrDefault();
            if (best.dir is not null)
            {
                binDirectory = Path.Combine(best.dir, "bin");
                major = Path.GetFileName(best.dir);
            }
        }

        if (binDirectory is null && pathDirectories.FirstOrDefault(HasPostgres) is { } onPath)
        {
            binDirectory = onPath;
            major = MajorVersionFromLinkTarget(Path.Combine(onPath, "postgres"));
        }

        var redis = pathDirectories.Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);
        return new LocalBinaries(binDirectory, major, redis);
    }

    private static bool HasPostgres(string directory) =>
        File.Exists(Path.Combine(directory, "postgres")) && File.Exists(Path.Combine(directory, "initdb"));

    private static Version? ParseMajorVersion(string? name) =>
        Version.TryParse(name is not null && !name.Contains('.') ? name + ".0" : name, out var v) ? v : null;

    // /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres gives "15"; otherwise the version is unknown.
    private static string? MajorVersionFromLinkTarget(string executable)
    {
        var target = new FileInfo(executable).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? executable;
        var parts = target.Split(Path.DirectorySeparatorChar);
        var index = Array.IndexOf(parts, "postgresql");
        return index >= 0 && index + 1 < parts.Length && ParseMajorVersion(parts[index + 1]) is not null ? parts[index + 1] : null;
    }
}
