using System.Text;
using System.Text.Json.Nodes;

namespace TokenRouter.Replay;

/// <summary>Wire bodies of one request (<c>system + turns[:k]</c> with the tools of that moment) in either client format.</summary>
internal static class RequestFactory
{
    public const int AnthropicMaxTokens = 1024;

    public static byte[] OpenAI(ClientSession s, int k, int previousK, string model)
    {
        var messages = new JsonArray();
        if (s.Source.System is { } system) messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
        for (var i = 0; i < k; i++) messages.Add(s.TurnAt(i, previousK).DeepClone());
        var request = new JsonObject { ["model"] = model, ["messages"] = messages };
        var tools = new JsonArray();
        foreach (var t in s.ToolsAt(k)) tools.Add(t.DeepClone());
        if (tools.Count > 0) request["tools"] = tools;
        return Encoding.UTF8.GetBytes(request.ToJsonString());
    }

    /// <summary>
    /// The session translated the way an Anthropic SDK client sends it: <c>system</c> top-level, assistant tool calls as
    /// <c>tool_use</c> blocks, tool messages as <c>tool_result</c> blocks in a user turn (consecutive same-role turns merged),
    /// tools with <c>input_schema</c>. With <paramref name="idealBreakpoints"/> (BEST) it carries <c>cache_control</c>
    /// after tools+system, on the previous request's last message and on the last message; clients send none.
    /// </summary>
    public static byte[] Anthropic(ClientSession s, int k, int previousK, string model, bool idealBreakpoints)
    {
        var messages = new List<(string Role, JsonArray Blocks)>();
        var messageOfTurn = new int[k];
        for (var i = 0; i < k; i++)
        {
            var turn = s.TurnAt(i, previousK);
            var role = turn["role"]!.GetValue<string>();
            var blocks = new JsonArray();
            var anthropicRole = role == "assistant" ? "assistant" : "user";
            if (role == "tool")
            {
                blocks.Add(new JsonObject
                {
                    ["type"] = "tool_result",
                    ["tool_use_id"] = turn["tool_call_id"]?.GetValue<string>() ?? "",
                    ["content"] = turn["content"]?.DeepClone() ?? "",
                });
            }
            else
            {
                if (turn["content"] is JsonValue v && v.TryGetValue<string>(out var text) && text.Length > 0)
                    blocks.Add(new JsonObject { ["type"] = "text", ["text"] = text });
                else if (turn["content"] is JsonArray parts)
                    foreach (var p in parts) if (p?["text"] is JsonValue pt && pt.GetValue<string>().Length > 0) blocks.Add(new JsonObject { ["type"] = "text", ["text"] = pt.GetValue<string>() });
                if (turn["tool_calls"] is JsonArray calls)
                {
                    foreach (var c in calls)
                    {
                        blocks.Add(new JsonObject
                        {
                            ["type"] = "tool_use",
                            ["id"] = c?["id"]?.GetValue<string>() ?? "",
                            ["name"] = c?["function"]?["name"]?.GetValue<string>() ?? "",
                            ["input"] = JsonShapes.ArgumentsObject(c?["function"]?["arguments"]?.GetValue<string>() ?? "{}", s.InputKeyOrder),
                        });
                    }
                }
            }
            if (blocks.Count == 0) blocks.Add(new JsonObject { ["type"] = "text", ["text"] = "(empty)" });
            if (messages.Count > 0 && messages[^1].Role == anthropicRole)
            {
                foreach (var b in blocks.ToList())
                {
                    blocks.Remove(b);
                    messages[^1].Blocks.Add(b);
                }
            }
            else
            {
                messages.Add((anthropicRole, blocks));
            }
            messageOfTurn[i] = messages.Count - 1;
        }

        if (idealBreakpoints && messages.Count > 0)
        {
            Mark(messages[^1].Blocks);
            if (previousK > 0 && previousK <= k) Mark(messages[messageOfTurn[previousK - 1]].Blocks);
        }

        var wire = new JsonArray();
        foreach (var (role, blocks) in messages)
        {
            // A lone text block goes as a plain string, as SDK users usually write it (same prompt bytes either way).
            JsonNode content = blocks is [JsonObject { Count: 2 } only] && only["type"]?.GetValue<string>() == "text"
                ? only["text"]!.GetValue<string>()
                : blocks;
            wire.Add(new JsonObject { ["role"] = role, ["content"] = content });
        }

        var request = new JsonObject { ["model"] = model, ["max_tokens"] = AnthropicMaxTokens };
        var tools = new JsonArray();
        foreach (var t in s.ToolsAt(k))
        {
            var fn = t["function"]!;
            var tool = new JsonObject
            {
                ["name"] = fn["name"]?.DeepClone(),
                ["description"] = fn["description"]?.DeepClone() ?? "",
                ["input_schema"] = fn["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object" },
            };
            tools.Add(JsonShapes.Reorder(tool, s.ToolKeyOrder));
        }
        if (s.Source.System is { } system)
        {
            request["system"] = idealBreakpoints
                ? new JsonArray(new JsonObject { ["type"] = "text", ["text"] = system, ["cache_control"] = Ephemeral() })
                : system;
        }
        else if (idealBreakpoints && tools.Count > 0)
        {
            tools[^1]!["cache_control"] = Ephemeral();
        }
        if (tools.Count > 0) request["tools"] = tools;
        request["messages"] = wire;
        return Encoding.UTF8.GetBytes(request.ToJsonString());

        static void Mark(JsonArray blocks) => blocks[^1]!["cache_control"] = Ephemeral();
        static JsonObject Ephemeral() => new() { ["type"] = "ephemeral" };
    }
}
