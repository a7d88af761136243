using System.Text.Json.Nodes;
using TokenRouter.Bench;

namespace TokenRouter.Replay;

/// <summary>
/// The simulated client programs. They send the same conversations but serialize them the way different real
/// clients do; sessions are assigned to A–D round-robin. <see cref="Canonical"/> is not a client: it is the one
/// cache-ideal form every client would have to agree on (the BEST mode).
/// </summary>
internal enum ClientProgram
{
    /// <summary>A: tools, schemas and arguments exactly as recorded.</summary>
    A,
    /// <summary>B: tool order shuffled per conversation (stable within it, like a dict-ordered client); every other
    /// B session adds a tool mid-conversation, appended where such a client puts it (at the end).</summary>
    B,
    /// <summary>C: re-serializes tool definitions with object keys in descending order.</summary>
    C,
    /// <summary>D: re-serializes tool-call arguments in history Python-style with spaces (<c>{"a": 1}</c>); the assistant
    /// message it just received is sent back verbatim once, then re-serialized with the rest of the history.</summary>
    D,
    /// <summary>The canonical form: tools by name (a tool added later appended), sorted keys, compact sorted arguments.</summary>
    Canonical,
}

/// <summary>A session as one client program sends it (OpenAI shape; the Anthropic shape is derived per request).</summary>
internal sealed class ClientSession
{
    public required WorkloadSession Source { get; init; }
    public required ClientProgram Client { get; init; }
    /// <summary>Tools sent from the first request on, in the client's order and key order (OpenAI tool objects).</summary>
    public required List<JsonObject> InitialTools { get; init; }
    /// <summary>A tool the conversation adds at turn <see cref="GrowAt"/> (appended after the initial tools).</summary>
    public JsonObject? AddedTool { get; init; }
    public int GrowAt { get; init; } = int.MaxValue;
    /// <summary>The turns as the client keeps them in its history (its argument formatting applied).</summary>
    public required List<JsonObject> Turns { get; init; }
    /// <summary>True when the newest turns (from the previous response on) go out verbatim as received, not yet
    /// re-serialized like the older history (client D).</summary>
    public bool FreshTurnsVerbatim { get; init; }
    /// <summary>Key order for Anthropic <c>tool_use.input</c> objects and tool objects.</summary>
    public KeyOrder InputKeyOrder { get; init; }
    public KeyOrder ToolKeyOrder { get; init; }
    public List<int> RequestPoints { get; } = [];

    /// <summary>Turn <paramref name="i"/> as sent in a request whose previous request was <c>turns[:previousK]</c>:
    /// <c>turns[previousK]</c> is the assistant message that request received.</summary>
    public JsonObject TurnAt(int i, int previousK) =>
        FreshTurnsVerbatim && i >= previousK ? Source.Turns[i]!.AsObject() : Turns[i];

    public IEnumerable<JsonObject> ToolsAt(int k) => AddedTool is not null && k >= GrowAt ? InitialTools.Append(AddedTool) : InitialTools;

    /// <summary>
    /// Builds what <paramref name="client"/> sends for <paramref name="s"/>. <paramref name="grows"/> decides whether the
    /// conversation adds a tool mid-way — conversation content, so BEST replays the same growth as the client did.
    /// </summary>
    public static ClientSession Create(WorkloadSession s, ClientProgram client, bool grows)
    {
        var points = s.RequestPoints();
        var tools = s.Tools.Select(t => t!.AsObject()).ToList();

        // Growth: withhold a tool not used before the middle request, add it there.
        JsonObject? added = null;
        var growAt = int.MaxValue;
        if (grows && points.Count >= 4 && tools.Count >= 2)
        {
            var at = points[points.Count / 2];
            var usedBefore = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < at; i++)
            {
                if (s.Turns[i]?["tool_calls"] is JsonArray calls)
                    foreach (var c in calls) usedBefore.Add(c?["function"]?["name"]?.GetValue<string>() ?? "");
            }
            // The unused tool nearest the middle of the name order: a client that sorts would insert it mid-list,
            // one that appends puts it last (the design's "trap" needs the difference to exist).
            var byName = tools.OrderBy(ToolName, StringComparer.Ordinal).ToList();
            var candidate = byName.Where(t => !usedBefore.Contains(ToolName(t)))
                .OrderBy(t => Math.Abs(byName.IndexOf(t) - (byName.Count - 1) / 2.0)).FirstOrDefault();
            if (candidate is not null)
            {
                added = candidate;
                growAt = at;
                tools = tools.Where(t => !ReferenceEquals(t, candidate)).ToList();
            }
        }

        var toolKeys = client switch { ClientProgram.C => KeyOrder.Descending, ClientProgram.Canonical => KeyOrder.Ascending, _ => KeyOrder.Keep };
        switch (client)
        {
            case ClientProgram.B:
                var rng = new Random((int)(JsonShapes.StableHash(s.Id) & 0x7FFFFFFF));
                var shuffled = tools.ToList();
                for (var i = shuffled.Count - 1; i > 0; i--)
                {
                    var j = rng.Next(i + 1);
                    (shuffled[i], shuffled[j]) = (shuffled[j], shuffled[i]);
                }
                if (shuffled.Count > 1 && shuffled.Select(ToolName).SequenceEqual(tools.Select(ToolName)))
                {
                    // Never the recorded order by accident: rotate by one.
                    shuffled.Add(shuffled[0]);
                    shuffled.RemoveAt(0);
                }
                tools = shuffled;
                break;
            case ClientProgram.Canonical:
                tools = tools.OrderBy(ToolName, StringComparer.Ordinal).ToList();
                break;
        }

        var turns = new List<JsonObject>(s.Turns.Count);
        foreach (var t in s.Turns)
        {
            var turn = t!.DeepClone().AsObject();
            if (client is ClientProgram.D or ClientProgram.Canonical && turn["tool_calls"] is JsonArray calls)
            {
                foreach (var call in calls)
                {
                    if (call?["function"] is JsonObject fn && fn["arguments"] is JsonValue args && args.TryGetValue<string>(out var text))
                    {
                        fn["arguments"] = client == ClientProgram.D
                            ? JsonShapes.ReformatArguments(text, spaced: true, KeyOrder.Keep)
                            : JsonShapes.ReformatArguments(text, spaced: false, KeyOrder.Ascending);
                    }
                }
            }
            turns.Add(turn);
        }

        var session = new ClientSession
        {
            Source = s,
            Client = client,
            InitialTools = tools.Select(t => (JsonObject)JsonShapes.Reorder(t, toolKeys)!).ToList(),
            AddedTool = added is null ? null : (JsonObject)JsonShapes.Reorder(added, toolKeys)!,
            GrowAt = growAt,
            Turns = turns,
            FreshTurnsVerbatim = client == ClientProgram.D,
            InputKeyOrder = client == ClientProgram.Canonical ? KeyOrder.Ascending : KeyOrder.Keep,
            ToolKeyOrder = toolKeys,
        };
        session.RequestPoints.AddRange(points);
        return session;
    }

    public static string ToolName(JsonObject tool) => tool["function"]?["name"]?.GetValue<string>() ?? tool["name"]?.GetValue<string>() ?? "";
}
