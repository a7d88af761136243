using System.Buffers;
using System.Text;
using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>
/// Anthropic messages: renders tools → system → messages as a sequence of blocks (one tool, one system
/// block, one message content block each), validates and applies <c>cache_control</c> breakpoints, and
/// emulates the prompt cache as Anthropic documents it.
/// </summary>
/// <remarks>
/// Only prefixes ending at a breakpoint are written (if at least the minimum cacheable length). A request
/// reads the longest previously written prefix ending at one of its breakpoints or at one of the 20 blocks
/// before each breakpoint. Usage follows Anthropic's A/B/C rule: A = tokens read, B = the last 1 h
/// breakpoint after A, C = the last breakpoint; 1 h writes = B − A, 5 m writes = C − B, input = total − max(A, C).
/// </remarks>
internal sealed class AnthropicMessagesSimulator(SimPrefixCache cache, SimulatorOptions options)
{
    public const int MaxBreakpoints = 4;
    public const int LookbackBlocks = 20;
    private static readonly TimeSpan OneHour = TimeSpan.FromHours(1);

    private readonly record struct Breakpoint(int Block, bool OneHour, string Path);

    /// <summary>Where a block sits, as Anthropic names it in errors; formatted only when needed.</summary>
    private readonly record struct BlockPath(string Section, int Index, int Content = -1)
    {
        public override string ToString() => Content < 0 ? $"{Section}.{Index}" : $"{Section}.{Index}.content.{Content}";
    }

    public SimCompletion Process(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new SimRequestException(SimError.InvalidRequest("The request body must be a JSON object."));
        if (!root.TryGetProperty("model", out var modelElement) || modelElement.ValueKind != JsonValueKind.String ||
            modelElement.GetString() is not { Length: > 0 } model)
        {
            throw new SimRequestException(SimError.InvalidRequest("model: Field required"));
        }

        if (!root.TryGetProperty("max_tokens", out var maxTokensElement) || maxTokensElement.ValueKind == JsonValueKind.Null)
            throw new SimRequestException(SimError.InvalidRequest("max_tokens: Field required"));
        if (maxTokensElement.ValueKind != JsonValueKind.Number || !maxTokensElement.TryGetInt32(out var maxTokens) || maxTokens < 0)
            throw new SimRequestException(SimError.InvalidRequest("max_tokens: Input should be a valid integer greater than or equal to 0"));

        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw new SimRequestException(SimError.InvalidRequest("messages: Field required"));
        if (messages.GetArrayLength() == 0)
            throw new SimRequestException(SimError.InvalidRequest("messages: at least one message is required"));

        var stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;

        using var prompt = new SimPromptWriter();
        var blockEnds = new List<int>(64);
        var breakpoints = new List<Breakpoint>(MaxBreakpoints);
        var (endsWithUserText, lastUserText) = Render(prompt, root, messages, blockEnds, breakpoints);
        ValidateBreakpoints(breakpoints);

        var (usage, digest) = LookupAndWrite(prompt.Bytes, model, blockEnds, breakpoints);

        var tools = CustomTools(root);
        var choice = ReadToolChoice(root);
        if (choice.Mode == SimToolChoiceMode.Forced && !tools.Exists(x => x.Name == choice.Name))
            throw new SimRequestException(SimError.InvalidRequest($"tool_choice: tool '{choice.Name}' not found in tools"));
        var reply = maxTokens == 0
            ? new SimReply(null, null, 0, true) // max_tokens 0 only warms the cache
            : SimReply.Create(tools, choice, endsWithUserText, lastUserText, digest, maxTokens);

        return new SimCompletion
        {
            Model = model,
            Reply = reply,
            Usage = usage with { OutputTokens = reply.OutputTokens },
            Stream = stream,
        };
    }

    private static (bool EndsWithUserText, string LastUserText) Render(
        SimPromptWriter w, JsonElement root, JsonElement messages, List<int> blockEnds, List<Breakpoint> breakpoints)
    {
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var tool in tools.EnumerateArray())
            {
                w.Raw("<tool>"u8);
                if (tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("input_schema", out var schema))
                {
                    if (tool.TryGetProperty("name", out var name))
                        w.Text(name);
                    w.Raw("\n"u8);
                    if (tool.TryGetProperty("description", out var description))
                        w.Text(description);
                    w.Raw("\n"u8);
                    w.Json(schema);
                }
                else
                {
                    w.JsonWithout(tool, "cache_control");
                }

                w.Raw("\n"u8);
                EndBlock(w, tool, new BlockPath("tools", i++), blockEnds, breakpoints);
            }
        }

        if (root.TryGetProperty("system", out var system) && system.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined))
        {
            w.Raw("<system>"u8);
            if (system.ValueKind == JsonValueKind.String)
            {
                w.Text(system);
                w.Raw("\n"u8);
                blockEnds.Add(w.Length);
            }
            else if (system.ValueKind == JsonValueKind.Array)
            {
                var i = 0;
                foreach (var block in system.EnumerateArray())
                {
                    RenderContentBlock(w, block, new BlockPath("system", i));
                    EndBlock(w, block, new BlockPath("system", i++), blockEnds, breakpoints);
                }
            }
            else
            {
                throw new SimRequestException(SimError.InvalidRequest("system: Input should be a valid string or a list of text blocks"));
            }
        }

        // Anthropic documents that changing tool_choice or thinking invalidates the cached messages but not
        // tools or system, so they are rendered where the messages begin.
        if (root.TryGetProperty("tool_choice", out var toolChoice))
        {
            w.Raw("<tool_choice>"u8);
            w.Json(toolChoice);
        }

        if (root.TryGetProperty("thinking", out var thinking))
        {
            w.Raw("<thinking>"u8);
            w.Json(thinking);
        }

        string? previousRole = null;
        var endsWithUserText = false;
        var lastUserTurn = new StringBuilder();
        var m = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object || !message.TryGetProperty("role", out var roleElement) ||
                roleElement.ValueKind != JsonValueKind.String)
            {
                throw new SimRequestException(SimError.InvalidRequest($"messages.{m}.role: Field required"));
            }

            var role = roleElement.ValueEquals("user") ? "user" : roleElement.ValueEquals("assistant") ? "assistant" : null;
            if (role is null)
            {
                throw new SimRequestException(SimError.InvalidRequest(
                    $"messages.{m}.role: Input should be 'user' or 'assistant'. The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."));
            }

            if (!message.TryGetProperty("content", out var content) || content.ValueKind is not (JsonValueKind.String or JsonValueKind.Array))
                throw new SimRequestException(SimError.InvalidRequest($"messages.{m}.content: Input should be a valid string or a list of content blocks"));

            // Consecutive turns of one role are combined into a single turn (documented API behaviour).
            if (role != previousRole)
            {
                w.Raw(role == "user" ? "\n\nHuman: "u8 : "\n\nAssistant: "u8);
                if (role == "user")
                    lastUserTurn.Clear();
            }

            previousRole = role;

            var hasToolResult = false;
            if (content.ValueKind == JsonValueKind.String)
            {
                w.Text(content);
                w.Raw("\n"u8);
                blockEnds.Add(w.Length);
            }
            else
            {
                var c = 0;
                foreach (var block in content.EnumerateArray())
                {
                    hasToolResult |= block.ValueKind == JsonValueKind.Object && block.TryGetProperty("type", out var type) && type.ValueEquals("tool_result");
                    RenderContentBlock(w, block, new BlockPath("messages", m, c));
                    EndBlock(w, block, new BlockPath("messages", m, c++), blockEnds, breakpoints);
                }
            }

            endsWithUserText = role == "user" && !hasToolResult;
            if (role == "user")
                AppendUserText(lastUserTurn, content);
            m++;
        }

        // The assistant turn the model continues from; prefill (a final assistant message) needs none.
        if (previousRole == "user")
            w.Raw("\n\nAssistant:"u8);

        // Top-level cache_control marks the last block of the request (one of the 4 allowed breakpoints).
        if (root.TryGetProperty("cache_control", out var topLevel) && topLevel.ValueKind == JsonValueKind.Object && blockEnds.Count > 0)
        {
            var oneHour = ReadCacheControl(topLevel, "cache_control");
            var last = blockEnds.Count - 1;
            if (!breakpoints.Exists(b => b.Block == last))
                breakpoints.Add(new Breakpoint(last, oneHour, "cache_control"));
        }

        return (endsWithUserText, lastUserTurn.ToString());
    }

    private static void RenderContentBlock(SimPromptWriter w, JsonElement block, BlockPath path)
    {
        if (block.ValueKind != JsonValueKind.Object || !block.TryGetProperty("type", out var type))
            throw new SimRequestException(SimError.InvalidRequest($"{path}.type: Field required"));

        if (type.ValueEquals("text"))
        {
            if (!block.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                throw new SimRequestException(SimError.InvalidRequest($"{path}.text: Field required"));
            if (text.ValueEquals(""))
                throw new SimRequestException(SimError.InvalidRequest($"{path}: text content blocks must be non-empty"));
            w.Text(text);
        }
        else if (type.ValueEquals("tool_use"))
        {
            w.Raw("<tool_use "u8);
            if (block.TryGetProperty("id", out var id))
                w.Text(id);
            w.Raw(" "u8);
            if (block.TryGetProperty("name", out var name))
                w.Text(name);
            w.Raw(">"u8);
            if (block.TryGetProperty("input", out var input))
                w.Json(input);
        }
        else if (type.ValueEquals("tool_result"))
        {
            w.Raw("<tool_result "u8);
            if (block.TryGetProperty("tool_use_id", out var id))
                w.Text(id);
            w.Raw(">"u8);
            if (block.TryGetProperty("is_error", out var isError) && isError.ValueKind == JsonValueKind.True)
                w.Raw("<error>"u8);
            if (block.TryGetProperty("content", out var content))
            {
                if (content.ValueKind == JsonValueKind.Array)
                {
                    foreach (var inner in content.EnumerateArray())
                    {
                        if (inner.ValueKind == JsonValueKind.Object && inner.TryGetProperty("type", out var innerType) &&
                            innerType.ValueEquals("text") && inner.TryGetProperty("text", out var innerText))
                        {
                            w.Text(innerText);
                        }
                        else
                        {
                            w.JsonWithout(inner, "cache_control");
                        }
                    }
                }
                else
                {
                    w.Text(content);
                }
            }
        }
        else
        {
            w.JsonWithout(block, "cache_control");
        }

        w.Raw("\n"u8);
    }

    private static void EndBlock(SimPromptWriter w, JsonElement block, BlockPath path, List<int> blockEnds, List<Breakpoint> breakpoints)
    {
        blockEnds.Add(w.Length);
        if (block.ValueKind == JsonValueKind.Object && block.TryGetProperty("cache_control", out var cc) && cc.ValueKind != JsonValueKind.Null)
            breakpoints.Add(new Breakpoint(blockEnds.Count - 1, ReadCacheControl(cc, $"{path}.cache_control"), path.ToString()));
    }

    private static bool ReadCacheControl(JsonElement cc, string path)
    {
        if (cc.ValueKind != JsonValueKind.Object || !cc.TryGetProperty("type", out var type) || !type.ValueEquals("ephemeral"))
            throw new SimRequestException(SimError.InvalidRequest($"{path}.type: Input should be 'ephemeral'"));
        if (!cc.TryGetProperty("ttl", out var ttl) || ttl.ValueKind == JsonValueKind.Null || ttl.ValueEquals("5m"))
            return false;
        if (ttl.ValueEquals("1h"))
            return true;
        throw new SimRequestException(SimError.InvalidRequest($"{path}.ttl: Input should be '5m' or '1h'"));
    }

    private static void ValidateBreakpoints(List<Breakpoint> breakpoints)
    {
        if (breakpoints.Count > MaxBreakpoints)
        {
            throw new SimRequestException(SimError.InvalidRequest(
                $"A maximum of {MaxBreakpoints} blocks with cache_control may be provided. Found {breakpoints.Count}."));
        }

        breakpoints.Sort(static (a, b) => a.Block.CompareTo(b.Block));
        string? first5m = null;
        foreach (var bp in breakpoints)
        {
            if (!bp.OneHour)
            {
                first5m ??= bp.Path;
            }
            else if (first5m is not null)
            {
                throw new SimRequestException(SimError.InvalidRequest(
                    $"{bp.Path}: a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block ({first5m}). " +
                    "Note that blocks are processed in the following order: `tools`, `system`, `messages`."));
            }
        }
    }

    private (SimUsage Usage, SimHash Digest) LookupAndWrite(ReadOnlySpan<byte> bytes, string model, List<int> blockEnds, List<Breakpoint> breakpoints)
    {
        var total = SimTokenizer.CountTokens(bytes.Length);
        var hashes = ArrayPool<SimHash>.Shared.Rent(Math.Max(blockEnds.Count, 1));
        try
        {
            var h = SimHash.Of(Encoding.UTF8.GetBytes("Anthropic\n" + model));
            var start = 0;
            for (var i = 0; i < blockEnds.Count; i++)
            {
                h = h.Append(bytes[start..blockEnds[i]]);
                hashes[i] = h;
                start = blockEnds[i];
            }

            var digest = h.Append(bytes[start..]);
            var now = cache.NowTicks;
            var min = options.AnthropicMinCacheableTokens;

            // Read: the longest written prefix at a breakpoint or within the 20 blocks before it.
            var read = 0;
            var readBlock = -1;
            var readLongTtl = false;
            foreach (var bp in breakpoints)
            {
                for (var i = bp.Block; i >= 0 && i >= bp.Block - LookbackBlocks; i--)
                {
                    var tokens = SimTokenizer.CountTokens(blockEnds[i]);
                    if (tokens <= read)
                        break;
                    if (cache.TryGet(hashes[i], now, out var longTtl))
                    {
                        (read, readBlock, readLongTtl) = (tokens, i, longTtl);
                        break;
                    }
                }
            }

            if (readBlock >= 0)
                cache.Put(hashes[readBlock], now, readLongTtl ? OneHour : options.DefaultCacheTtl, readLongTtl);

            // Write: every breakpoint long enough to be cacheable; account for what lies beyond the read.
            var last = read;
            var lastOneHour = read;
            foreach (var bp in breakpoints)
            {
                var tokens = SimTokenizer.CountTokens(blockEnds[bp.Block]);
                if (tokens < min)
                    continue;
                cache.Put(hashes[bp.Block], now, bp.OneHour ? OneHour : options.DefaultCacheTtl, bp.OneHour);
                last = Math.Max(last, tokens);
                if (bp.OneHour)
                    lastOneHour = Math.Max(lastOneHour, tokens);
            }

            var write1h = lastOneHour - read;
            var write5m = last - lastOneHour;
            return (new SimUsage(total, read, write5m, write1h, 0), digest);
        }
        finally
        {
            ArrayPool<SimHash>.Shared.Return(hashes);
        }
    }

    private static List<SimTool> CustomTools(JsonElement root)
    {
        var list = new List<SimTool>();
        if (!root.TryGetProperty("tools", out var tools) || tools.ValueKind != JsonValueKind.Array)
            return list;
        foreach (var tool in tools.EnumerateArray())
        {
            // Server tools (web search, …) have no input_schema and run on the provider's side.
            if (tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("input_schema", out var schema) &&
                tool.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
            {
                list.Add(new SimTool(name.GetString()!, schema));
            }
        }

        return list;
    }

    private static SimToolChoice ReadToolChoice(JsonElement root)
    {
        if (!root.TryGetProperty("tool_choice", out var choice) || choice.ValueKind != JsonValueKind.Object ||
            !choice.TryGetProperty("type", out var type))
        {
            return SimToolChoice.Auto;
        }

        if (type.ValueEquals("none"))
            return new SimToolChoice(SimToolChoiceMode.None);
        if (type.ValueEquals("any"))
            return new SimToolChoice(SimToolChoiceMode.Required);
        if (type.ValueEquals("tool") && choice.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
            return new SimToolChoice(SimToolChoiceMode.Forced, name.GetString());
        return SimToolChoice.Auto;
    }

    private static void AppendUserText(StringBuilder sb, JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            sb.Append(content.GetString());
            return;
        }

        foreach (var block in content.EnumerateArray())
        {
            if (block.ValueKind == JsonValueKind.Object && block.TryGetProperty("type", out var type) && type.ValueEquals("text") &&
                block.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
            {
                sb.Append(text.GetString());
            }
        }
    }
}
