using System.Text;
using System.Text.Json.Nodes;
using TokenRouter.Bench;

namespace TokenRouter.Soak;

/// <summary>What one request of the mix is, and so what the soak expects of it.</summary>
internal enum RequestKind
{
    OpenAIChat,
    AnthropicMessages,
    DedupBurst,
    Disconnect,
    Hostile,
}

/// <summary>A request ready to send: the path, the body, whether the client authenticates with the good key.</summary>
internal sealed record SoakRequest(RequestKind Kind, string Path, byte[] Body, bool Stream, bool Anthropic, bool BadKey = false);

/// <summary>
/// Builds the mix from the real agent sessions: OpenAI chat requests are a session's history up to one of its assistant
/// turns, with its tools; Anthropic requests carry the session's system prompt, tools and first user message. Hostile
/// requests are the kinds a gateway sees from broken or malicious clients.
/// </summary>
internal sealed class SoakRequests(List<WorkloadSession> sessions, long maxBodyBytes)
{
    private static readonly string[] Models = ["sim-openai", "sim-deepseek", "sim-anthropic"];

    public SoakRequest OpenAIChat(Random random, bool stream, string? nonce = null)
    {
        var (session, point) = Pick(random);
        var messages = new JsonArray();
        if (session.System is { } system) messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
        for (var k = 0; k < point; k++) messages.Add(session.Turns[k]!.DeepClone());
        if (nonce is not null) messages.Add(new JsonObject { ["role"] = "user", ["content"] = "burst " + nonce });
        var body = new JsonObject
        {
            ["model"] = Models[random.Next(Models.Length)],
            ["messages"] = messages,
            ["max_tokens"] = 64,
        };
        if (session.Tools.Count > 0) body["tools"] = session.Tools.DeepClone();
        if (stream)
        {
            body["stream"] = true;
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }
        return new SoakRequest(RequestKind.OpenAIChat, "v1/chat/completions", Encoding.UTF8.GetBytes(body.ToJsonString()), stream, Anthropic: false);
    }

    public SoakRequest AnthropicMessages(Random random, bool stream)
    {
        var (session, _) = Pick(random);
        var first = session.Turns.FirstOrDefault(t => t?["role"]?.GetValue<string>() == "user")?["content"];
        var text = first is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s : "Hello.";
        var tools = new JsonArray();
        foreach (var tool in session.Tools)
        {
            if (tool?["function"] is not JsonObject f) continue;
            tools.Add(new JsonObject
            {
                ["name"] = f["name"]?.DeepClone(),
                ["description"] = f["description"]?.DeepClone() ?? "",
                ["input_schema"] = f["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object" },
            });
        }
        var body = new JsonObject
        {
            ["model"] = Models[random.Next(Models.Length)],
            ["max_tokens"] = 64,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }),
        };
        if (session.System is { } system) body["system"] = system;
        if (tools.Count > 0) body["tools"] = tools;
        if (stream) body["stream"] = true;
        return new SoakRequest(RequestKind.AnthropicMessages, "v1/messages", Encoding.UTF8.GetBytes(body.ToJsonString()), stream, Anthropic: true);
    }

    public SoakRequest Hostile(Random random)
    {
        const string valid = """{"model":"sim-openai","messages":[{"role":"user","content":"hi"}]}""";
        return random.Next(6) switch
        {
            0 => Bad("v1/chat/completions", """{"model":"sim-openai","messages":[{"role":"user","content":"hi"""),
            1 => Bad("v1/chat/completions", """{"model":"sim-openai","messages":5}"""),
            2 => Bad("v1/messages", """{"model":"sim-anthropic","max_tokens":"lots","messages":[]}""", anthropic: true),
            3 => Bad("v1/chat/completions", """{"model":"no-such-model-anywhere","messages":[{"role":"user","content":"hi"}]}"""),
            4 => new SoakRequest(RequestKind.Hostile, "v1/chat/completions", Encoding.UTF8.GetBytes(valid), false, false, BadKey: true),
            _ => new SoakRequest(RequestKind.Hostile, "v1/chat/completions", Oversized(), false, false),
        };

        static SoakRequest Bad(string path, string json, bool anthropic = false) =>
            new(RequestKind.Hostile, path, Encoding.UTF8.GetBytes(json), false, anthropic);
    }

    /// <summary>A valid request one byte over the gateway's body limit.</summary>
    private byte[] Oversized()
    {
        var head = """{"model":"sim-openai","messages":[{"role":"user","content":" """u8.ToArray();
        var tail = "\"}]}"u8.ToArray();
        var body = new byte[maxBodyBytes + 1];
        head.CopyTo(body, 0);
        body.AsSpan(head.Length, body.Length - head.Length - tail.Length).Fill((byte)'a');
        tail.CopyTo(body, body.Length - tail.Length);
        return body;
    }

    private (WorkloadSession Session, int Point) Pick(Random random)
    {
        var session = sessions[random.Next(sessions.Count)];
        var points = session.RequestPoints();
        return (session, points.Count == 0 ? session.Turns.Count : points[random.Next(points.Count)]);
    }
}
