using System.Buffers;
using System.Text;
using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>
/// OpenAI chat completions and DeepSeek (same wire format): renders the prompt, emulates the automatic
/// prefix cache and picks the deterministic reply.
/// </summary>
/// <remarks>
/// OpenAI caches prompts of at least 1024 tokens and reports hits in 128-token increments of the exact
/// prefix; DeepSeek's disk cache works in 64-token units. Both are modelled as chained hashes over fixed
/// units of the rendered bytes (unit = 128 or 64 tokens × 4 bytes): the cached count is the longest run of
/// leading units whose chain hash was written by an earlier request, and every request (re)writes all of its
/// complete units with a TTL that restarts on use.
/// </remarks>
internal sealed class OpenAIChatSimulator(SimPrefixCache cache, SimulatorOptions options)
{
    public const int OpenAIUnitTokens = 128;
    public const int OpenAIMinCachedTokens = 1024;
    public const int DeepSeekUnitTokens = 64;

    public SimCompletion Process(JsonElement root, SimFormat format)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new SimRequestException(SimError.InvalidRequest("The request body must be a JSON object."));

        if (!root.TryGetProperty("model", out var modelElement) || modelElement.ValueKind != JsonValueKind.String ||
            modelElement.GetString() is not { Length: > 0 } model)
        {
            throw new SimRequestException(SimError.InvalidRequest("you must provide a model parameter", "model"));
        }

        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            throw new SimRequestException(SimError.InvalidRequest("Missing required parameter: 'messages'.", "messages"));
        if (messages.GetArrayLength() == 0)
            throw new SimRequestException(SimError.InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages"));

        var stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        var includeUsage = stream && root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object &&
                           so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
        var maxTokens = ReadMaxTokens(root, "max_completion_tokens") ?? ReadMaxTokens(root, "max_tokens");
        var tools = root.TryGetProperty("tools", out var t) && t.ValueKind == JsonValueKind.Array ? t : default;
        var choice = ReadToolChoice(root);

        using var prompt = new SimPromptWriter();
        var (endsWithUserText, lastUserText) = Render(prompt, root, tools, messages);

        var unitTokens = format == SimFormat.DeepSeek ? DeepSeekUnitTokens : OpenAIUnitTokens;
        var minUnits = format == SimFormat.DeepSeek ? 1 : OpenAIMinCachedTokens / OpenAIUnitTokens;
        var seed = Seed(root, model, format);
        var (cachedTokens, digest) = LookupAndWrite(prompt.Bytes, seed, unitTokens, minUnits, CacheTtl(root, format));

        var toolList = FunctionTools(tools);
        if (choice.Mode == SimToolChoiceMode.Forced && !toolList.Exists(x => x.Name == choice.Name))
            throw new SimRequestException(SimError.InvalidRequest($"Invalid value for 'tool_choice': no function named '{choice.Name}' was specified in the 'tools' parameter.", "tool_choice"));
        var reply = SimReply.Create(toolList, choice, endsWithUserText, lastUserText, digest, maxTokens);
        var promptTokens = SimTokenizer.CountTokens(prompt.Length);
        return new SimCompletion
        {
            Model = model,
            Reply = reply,
            Usage = new SimUsage(promptTokens, cachedTokens, 0, 0, reply.OutputTokens),
            Stream = stream,
            IncludeUsage = includeUsage,
        };
    }

    /// <summary>
    /// Provider order: tool definitions, then messages in order. Tool definitions keep the schema's key order;
    /// message text, tool-call arguments and descriptions are written verbatim (decoded).
    /// </summary>
    internal static (bool EndsWithUserText, string LastUserText) Render(SimPromptWriter w, JsonElement root, JsonElement tools, JsonElement messages)
    {
        if (tools.ValueKind == JsonValueKind.Array)
        {
            foreach (var tool in tools.EnumerateArray())
            {
                w.Raw("<|tool|>"u8);
                if (tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("function", out var fn) && fn.ValueKind == JsonValueKind.Object)
                {
                    if (fn.TryGetProperty("name", out var name))
                        w.Text(name);
                    w.Raw("\n"u8);
                    if (fn.TryGetProperty("description", out var description))
                        w.Text(description);
                    w.Raw("\n"u8);
                    if (fn.TryGetProperty("parameters", out var parameters))
                        w.Json(parameters);
                }
                else
                {
                    w.Json(tool);
                }

                w.Raw("\n"u8);
            }
        }

        // A structured-output schema is part of the prompt a model sees.
        if (root.TryGetProperty("response_format", out var responseFormat) && responseFormat.ValueKind == JsonValueKind.Object)
        {
            w.Raw("<|response_format|>"u8);
            w.Json(responseFormat);
            w.Raw("\n"u8);
        }

        var endsWithUserText = false;
        JsonElement lastUser = default;
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object || !message.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw new SimRequestException(SimError.InvalidRequest($"Missing required parameter: 'messages[{index}].role'.", $"messages[{index}].role"));

            w.Raw("<|im_start|>"u8);
            w.Text(role);
            if (message.TryGetProperty("name", out var name))
            {
                w.Raw(" "u8);
                w.Text(name);
            }

            w.Raw("\n"u8);
            if (message.TryGetProperty("tool_call_id", out var toolCallId))
            {
                w.Raw("<|tool_call_id|>"u8);
                w.Text(toolCallId);
                w.Raw("\n"u8);
            }

            if (message.TryGetProperty("content", out var content))
                RenderContent(w, content);

            if (message.TryGetProperty("tool_calls", out var toolCalls) && toolCalls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in toolCalls.EnumerateArray())
                {
                    w.Raw("<|tool_call|>"u8);
                    if (call.ValueKind != JsonValueKind.Object)
                    {
                        w.Json(call);
                        continue;
                    }

                    if (call.TryGetProperty("id", out var id))
                        w.Text(id);
                    w.Raw(" "u8);
                    if (call.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object)
                    {
                        if (function.TryGetProperty("name", out var fname))
                            w.Text(fname);
                        w.Raw(" "u8);
                        if (function.TryGetProperty("arguments", out var arguments))
                            w.Text(arguments);
                    }

                    w.Raw("\n"u8);
                }
            }

            if (message.TryGetProperty("function_call", out var functionCall))
            {
                w.Raw("<|function_call|>"u8);
                w.Json(functionCall);
            }

            w.Raw("<|im_end|>\n"u8);
            endsWithUserText = role.ValueEquals("user");
            if (endsWithUserText)
                lastUser = message;
            index++;
        }

        // The generation prompt a chat template appends; it is billed as prompt tokens too.
        w.Raw("<|im_start|>assistant\n"u8);
        return (endsWithUserText, lastUser.ValueKind == JsonValueKind.Object ? UserText(lastUser) : "");
    }

    private static void RenderContent(SimPromptWriter w, JsonElement content)
    {
        if (content.ValueKind != JsonValueKind.Array)
        {
            w.Text(content);
            return;
        }

        foreach (var part in content.EnumerateArray())
        {
            // A text part tokenizes like plain string content.
            if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var type) && type.ValueEquals("text") &&
                part.TryGetProperty("text", out var text))
            {
                w.Text(text);
            }
            else
            {
                w.Json(part);
            }
        }
    }

    private static string UserText(JsonElement message)
    {
        if (!message.TryGetProperty("content", out var content))
            return "";
        if (content.ValueKind == JsonValueKind.String)
            return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array)
            return "";
        var sb = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
                sb.Append(text.GetString());
        }

        return sb.ToString();
    }

    private SimHash Seed(JsonElement root, string model, SimFormat format)
    {
        // Caches are per model; the format keeps OpenAI and DeepSeek entries apart.
        var key = $"{format}\n{model}";
        if (options.PartitionOpenAICacheByPromptCacheKey && format == SimFormat.OpenAI &&
            root.TryGetProperty("prompt_cache_key", out var cacheKey) && cacheKey.ValueKind == JsonValueKind.String)
        {
            key += "\n" + cacheKey.GetString();
        }

        return SimHash.Of(Encoding.UTF8.GetBytes(key));
    }

    private TimeSpan CacheTtl(JsonElement root, SimFormat format) =>
        format == SimFormat.OpenAI && root.TryGetProperty("prompt_cache_retention", out var retention) && retention.ValueEquals("24h")
            ? TimeSpan.FromHours(24)
            : options.DefaultCacheTtl;

    private (int CachedTokens, SimHash Digest) LookupAndWrite(ReadOnlySpan<byte> bytes, SimHash seed, int unitTokens, int minUnits, TimeSpan ttl)
    {
        var unitBytes = SimTokenizer.ByteOffsetOfToken(unitTokens);
        var units = bytes.Length / unitBytes;
        var hashes = ArrayPool<SimHash>.Shared.Rent(Math.Max(units, 1));
        try
        {
            var h = seed;
            for (var k = 0; k < units; k++)
            {
                h = h.Append(bytes.Slice(k * unitBytes, unitBytes));
                hashes[k] = h;
            }

            var digest = h.Append(bytes[(units * unitBytes)..]);
            var now = cache.NowTicks;
            var hitUnits = 0;
            for (var k = units; k >= minUnits; k--)
            {
                if (cache.TryGet(hashes[k - 1], now, out _))
                {
                    hitUnits = k;
                    break;
                }
            }

            for (var k = minUnits; k <= units; k++)
                cache.Put(hashes[k - 1], now, ttl);

            return (hitUnits * unitTokens, digest);
        }
        finally
        {
            ArrayPool<SimHash>.Shared.Return(hashes);
        }
    }

    private static int? ReadMaxTokens(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n) || n < 1)
            throw new SimRequestException(SimError.InvalidRequest($"Invalid '{name}': expected an integer >= 1.", name));
        return n;
    }

    private static SimToolChoice ReadToolChoice(JsonElement root)
    {
        if (!root.TryGetProperty("tool_choice", out var choice))
            return SimToolChoice.Auto;
        if (choice.ValueKind == JsonValueKind.String)
        {
            return choice.GetString() switch
            {
                "none" => new SimToolChoice(SimToolChoiceMode.None),
                "required" => new SimToolChoice(SimToolChoiceMode.Required),
                _ => SimToolChoice.Auto,
            };
        }

        if (choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("function", out var fn) &&
            fn.ValueKind == JsonValueKind.Object && fn.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
        {
            return new SimToolChoice(SimToolChoiceMode.Forced, name.GetString());
        }

        return SimToolChoice.Auto;
    }

    private static List<SimTool> FunctionTools(JsonElement tools)
    {
        var list = new List<SimTool>();
        if (tools.ValueKind != JsonValueKind.Array)
            return list;
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("function", out var fn) && fn.ValueKind == JsonValueKind.Object &&
                fn.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
            {
                list.Add(new SimTool(name.GetString()!, fn.TryGetProperty("parameters", out var p) ? p : default));
            }
        }

        return list;
    }
}
