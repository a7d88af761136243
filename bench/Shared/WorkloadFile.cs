using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenRouter.Bench;

/// <summary>
/// One recorded agent session of <c>workloads/agent-sessions.jsonl</c> (see its SOURCES.md): OpenAI tool
/// definitions, an optional system prompt and the turns exactly as recorded.
/// </summary>
internal sealed record WorkloadSession(int Index, string Id, string Source, string? System, JsonArray Tools, JsonArray Turns)
{
    public bool IsTauBench => Id.StartsWith("tau-bench/", StringComparison.Ordinal);

    /// <summary>Indexes k where <c>turns[k]</c> is an assistant message: the session's requests are <c>system + turns[:k]</c>.</summary>
    public List<int> RequestPoints()
    {
        var points = new List<int>();
        for (var k = 0; k < Turns.Count; k++)
        {
            if (Turns[k]?["role"]?.GetValue<string>() == "assistant") points.Add(k);
        }
        return points;
    }
}

/// <summary>Finds and loads the workload file shared by the benchmarks and the replay.</summary>
internal static class WorkloadFile
{
    public const string EnvironmentVariable = "TOKENROUTER_WORKLOAD";
    // The repository's copy first, then the shared folder beside the repository it came from.
    private static readonly string[] RelativePaths = ["bench/workloads/agent-sessions.jsonl", "shared/workloads/agent-sessions.jsonl"];

    /// <summary>
    /// The explicit path if given, else <c>$TOKENROUTER_WORKLOAD</c>, else the first <c>bench/workloads/agent-sessions.jsonl</c>
    /// (or <c>shared/workloads/agent-sessions.jsonl</c>) found walking up from the current directory and from the program's directory.
    /// </summary>
    public static string Locate(string? explicitPath = null)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
            return File.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : throw new FileNotFoundException($"Workload file not found: {explicitPath}");
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnv)
            return File.Exists(fromEnv) ? Path.GetFullPath(fromEnv) : throw new FileNotFoundException($"{EnvironmentVariable} points to a missing file: {fromEnv}");
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                foreach (var relative in RelativePaths)
                {
                    var candidate = Path.Combine(dir.FullName, relative);
                    if (File.Exists(candidate)) return candidate;
                }
            }
        }
        throw new FileNotFoundException($"Could not find {RelativePaths[0]} above {Directory.GetCurrentDirectory()}; pass its path or set {EnvironmentVariable}.");
    }

    public static List<WorkloadSession> Load(string path)
    {
        var sessions = new List<WorkloadSession>();
        var index = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var o = JsonNode.Parse(line)?.AsObject() ?? throw new InvalidDataException($"Line {index + 1} of {path} is not a JSON object.");
            sessions.Add(new WorkloadSession(
                index++,
                o["id"]?.GetValue<string>() ?? $"session-{index}",
                o["source"]?.GetValue<string>() ?? "",
                o["system"] is JsonValue sys && sys.GetValueKind() == JsonValueKind.String ? sys.GetValue<string>() : null,
                o["tools"] as JsonArray ?? [],
                o["turns"] as JsonArray ?? throw new InvalidDataException($"Session {index} has no turns.")));
        }
        return sessions;
    }
}
