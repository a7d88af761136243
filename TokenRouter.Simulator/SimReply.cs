using System.Text;
using System.Text.Json;

namespace TokenRouter.Simulator;

internal enum SimToolChoiceMode
{
    Auto,
    None,
    Required,
    Forced,
}

internal readonly record struct SimToolChoice(SimToolChoiceMode Mode, string? Name = null)
{
    public static SimToolChoice Auto => new(SimToolChoiceMode.Auto);
}

internal readonly record struct SimTool(string Name, JsonElement Schema);

internal sealed record SimToolCall(string Name, string ArgumentsJson);

/// <summary>A deterministic model answer: either text or one tool call.</summary>
internal sealed record SimReply(string? Text, SimToolCall? ToolCall, int OutputTokens, bool Truncated)
{
    public bool IsToolCall => ToolCall is not null;

    /// <summary>
    /// Same inputs, same reply. A tool is called when tools are offered and the conversation ends with a user
    /// turn that is not a tool result (or the tool choice forces one); which tool depends on the user text and
    /// the sorted tool names only, never on the order the tools were sent in.
    /// </summary>
    public static SimReply Create(
        List<SimTool> tools,
        SimToolChoice choice,
        bool endsWithUserText,
        string lastUserText,
        SimHash promptDigest,
        int? maxTokens)
    {
        var callTool = tools.Count > 0 && choice.Mode switch
        {
            SimToolChoiceMode.None => false,
            SimToolChoiceMode.Required or SimToolChoiceMode.Forced => true,
            _ => endsWithUserText,
        };

        if (callTool)
        {
            var tool = PickTool(tools, choice, lastUserText);
            var arguments = SynthesizeArguments(tool.Schema);
            var tokens = SimTokenizer.CountTokens(Encoding.UTF8.GetByteCount(tool.Name) + Encoding.UTF8.GetByteCount(arguments));
            // A call that does not fit max_tokens degrades to truncated text rather than broken JSON.
            if (maxTokens is null || tokens <= maxTokens)
                return new SimReply(null, new SimToolCall(tool.Name, arguments), tokens, false);
        }

        var text = $"Simulated reply to \"{Excerpt(lastUserText)}\" [{promptDigest.Lo:x8}]. " +
                   "The TokenRouter simulator answers deterministically.";
        var truncated = false;
        if (maxTokens is { } max && SimTokenizer.CountTokens(text) > max)
        {
            text = TruncateToBytes(text, SimTokenizer.ByteOffsetOfToken(max));
            truncated = true;
        }

        return new SimReply(text, null, SimTokenizer.CountTokens(text), truncated);
    }

    private static SimTool PickTool(List<SimTool> tools, SimToolChoice choice, string lastUserText)
    {
        if (choice.Mode == SimToolChoiceMode.Forced)
        {
            foreach (var t in tools)
            {
                if (t.Name == choice.Name)
                    return t;
            }
        }

        var sorted = tools.ToArray();
        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        return sorted[(int)(Fnv1a(lastUserText) % (uint)sorted.Length)];
    }

    private static uint Fnv1a(string s)
    {
        var h = 2166136261u;
        foreach (var c in s)
            h = (h ^ c) * 16777619u;
        return h;
    }

    private static string Excerpt(string text)
    {
        const int max = 80;
        var span = text.AsSpan().Trim();
        if (span.Length > max)
            span = span[..(char.IsHighSurrogate(span[max - 1]) ? max - 1 : max)];
        return span.ToString().ReplaceLineEndings(" ");
    }

    private static string TruncateToBytes(string text, int maxBytes)
    {
        var bytes = 0;
        var chars = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (bytes + rune.Utf8SequenceLength > maxBytes)
                break;
            bytes += rune.Utf8SequenceLength;
            chars += rune.Utf16SequenceLength;
        }

        return text[..chars];
    }

    /// <summary>Compact JSON object with a value for every required property of the schema, in schema order.</summary>
    public static string SynthesizeArguments(JsonElement schema)
    {
        using var buffer = new SimBuffer(1024);
        using (var writer = new Utf8JsonWriter(buffer, SimPromptWriter.CompactJson))
        {
            WriteObject(writer, schema, 0);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteObject(Utf8JsonWriter writer, JsonElement schema, int depth)
    {
        writer.WriteStartObject();
        if (schema.ValueKind == JsonValueKind.Object &&
            schema.TryGetProperty("required", out var required) && required.ValueKind == JsonValueKind.Array)
        {
            var hasProperties = schema.TryGetProperty("properties", out var properties) && properties.ValueKind == JsonValueKind.Object;
            if (hasProperties)
            {
                foreach (var property in properties.EnumerateObject())
                {
                    if (Contains(required, property.Name))
                    {
                        writer.WritePropertyName(property.Name);
                        WriteValue(writer, property.Value, property.Name, depth + 1);
                    }
                }
            }

            foreach (var name in required.EnumerateArray())
            {
                if (name.ValueKind == JsonValueKind.String &&
                    (!hasProperties || !properties.TryGetProperty(name.GetString()!, out _)))
                {
                    writer.WriteString(name.GetString()!, "sim-" + name.GetString());
                }
            }
        }

        writer.WriteEndObject();
    }

    private static bool Contains(JsonElement array, string name)
    {
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String && item.ValueEquals(name))
                return true;
        }

        return false;
    }

    private static void WriteValue(Utf8JsonWriter writer, JsonElement schema, string name, int depth)
    {
        if (schema.ValueKind != JsonValueKind.Object || depth > 8)
        {
            writer.WriteStringValue("sim-" + name);
            return;
        }

        if (schema.TryGetProperty("const", out var constant))
        {
            constant.WriteTo(writer);
            return;
        }

        if (schema.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0)
        {
            values[0].WriteTo(writer);
            return;
        }

        if (schema.TryGetProperty("default", out var defaultValue))
        {
            defaultValue.WriteTo(writer);
            return;
        }

        foreach (var combinator in (ReadOnlySpan<string>)["anyOf", "oneOf", "allOf"])
        {
            if (schema.TryGetProperty(combinator, out var options) && options.ValueKind == JsonValueKind.Array && options.GetArrayLength() > 0)
            {
                WriteValue(writer, options[0], name, depth + 1);
                return;
            }
        }

        switch (TypeOf(schema))
        {
            case "string":
                writer.WriteStringValue(StringFor(schema, name));
                break;
            case "integer":
                writer.WriteNumberValue(schema.TryGetProperty("minimum", out var iMin) && iMin.TryGetInt64(out var min) ? Math.Max(min, 1) : 1);
                break;
            case "number":
                writer.WriteNumberValue(schema.TryGetProperty("minimum", out var nMin) && nMin.TryGetDouble(out var dMin) ? Math.Max(dMin, 1) : 1);
                break;
            case "boolean":
                writer.WriteBooleanValue(true);
                break;
            case "null":
                writer.WriteNullValue();
                break;
            case "array":
                writer.WriteStartArray();
                if (schema.TryGetProperty("minItems", out var minItems) && minItems.TryGetInt32(out var n) && n > 0 &&
                    schema.TryGetProperty("items", out var items))
                {
                    for (var i = 0; i < Math.Min(n, 8); i++)
                        WriteValue(writer, items, name, depth + 1);
                }

                writer.WriteEndArray();
                break;
            case "object":
                WriteObject(writer, schema, depth + 1);
                break;
            default:
                if (schema.TryGetProperty("properties", out _))
                    WriteObject(writer, schema, depth + 1);
                else
                    writer.WriteStringValue("sim-" + name);
                break;
        }
    }

    private static string? TypeOf(JsonElement schema)
    {
        if (!schema.TryGetProperty("type", out var type))
            return null;
        if (type.ValueKind == JsonValueKind.String)
            return type.GetString();
        if (type.ValueKind == JsonValueKind.Array)
        {
            foreach (var t in type.EnumerateArray())
            {
                if (t.ValueKind == JsonValueKind.String && !t.ValueEquals("null"))
                    return t.GetString();
            }
        }

        return null;
    }

    private static string StringFor(JsonElement schema, string name)
    {
        if (schema.TryGetProperty("format", out var format) && format.ValueKind == JsonValueKind.String)
        {
            switch (format.GetString())
            {
                case "date": return "2025-01-01";
                case "date-time": return "2025-01-01T00:00:00Z";
                case "email": return "sim@example.com";
                case "uri": return "https://example.com/sim";
            }
        }

        return "sim-" + name;
    }

    /// <summary>Splits text into several stream deltas at word boundaries.</summary>
    public static List<string> SplitText(string text)
    {
        var pieces = new List<string>();
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == ' ' && i - start >= 12)
            {
                pieces.Add(text[start..(i + 1)]);
                start = i + 1;
            }
        }

        if (start < text.Length)
            pieces.Add(text[start..]);
        return pieces;
    }

    /// <summary>Splits tool-call arguments into fixed-size fragments, never inside a surrogate pair.</summary>
    public static List<string> SplitArguments(string arguments, int size = 16)
    {
        var pieces = new List<string>();
        var start = 0;
        while (start < arguments.Length)
        {
            var end = Math.Min(start + size, arguments.Length);
            if (end < arguments.Length && char.IsHighSurrogate(arguments[end - 1]))
                end++;
            pieces.Add(arguments[start..end]);
            start = end;
        }

        return pieces;
    }
}
