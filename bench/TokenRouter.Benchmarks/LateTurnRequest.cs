using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using TokenRouter.Bench;

namespace TokenRouter.Benchmarks;

/// <summary>
/// The benchmark input: the OpenAI chat request a tau-bench airline agent sent late in a real session
/// (all 14 tools, ~20 turns, ~30 KB), rebuilt from the workload exactly as the replay sends it.
/// </summary>
internal static class LateTurnRequest
{
    public const int TargetBytes = 30_000;

    /// <param name="Body">Serialized as TypeScript's <c>JSON.stringify</c> and most Python clients do: only quotes,
    /// backslashes and control characters escaped.</param>
    /// <param name="DotNetEscapedBody">The same request as System.Text.Json's default encoder writes it (the .NET SDKs):
    /// apostrophes, <c>+ &lt; &gt; &amp;</c> and non-ASCII as <c>\uXXXX</c> escapes.</param>
    public sealed record Sample(string SessionId, int Turns, int Tools, byte[] Body, byte[] DotNetEscapedBody);

    /// <summary>Picks, over all tau-bench sessions, the request with 18–24 turns whose body is closest to 30 KB.</summary>
    public static Sample Build(string? workloadPath = null)
    {
        var sessions = WorkloadFile.Load(WorkloadFile.Locate(workloadPath));
        Sample? best = null;
        foreach (var s in sessions)
        {
            if (!s.IsTauBench) continue;
            foreach (var k in s.RequestPoints())
            {
                if (k is < 18 or > 24) continue;
                var body = Body(s, k);
                if (best is null || Math.Abs(body.Length - TargetBytes) < Math.Abs(best.Body.Length - TargetBytes))
                    best = new Sample(s.Id, k, s.Tools.Count, body, Body(s, k, DotNetEscaping));
            }
        }
        return best ?? throw new InvalidOperationException("No tau-bench request with 18–24 turns in the workload.");
    }

    private static readonly JsonSerializerOptions ClientEscaping = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions DotNetEscaping = new();

    public static byte[] Body(WorkloadSession s, int k, JsonSerializerOptions? escaping = null)
    {
        var messages = new JsonArray();
        if (s.System is not null) messages.Add(new JsonObject { ["role"] = "system", ["content"] = s.System });
        for (var i = 0; i < k; i++) messages.Add(s.Turns[i]!.DeepClone());
        var request = new JsonObject
        {
            ["model"] = "sim-openai",
            ["messages"] = messages,
            ["tools"] = s.Tools.DeepClone(),
            ["temperature"] = 0,
        };
        return Encoding.UTF8.GetBytes(request.ToJsonString(escaping ?? ClientEscaping));
    }
}
