using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenRouter.Replay;

/// <summary>How a client program orders the keys of JSON objects it serializes.</summary>
internal enum KeyOrder
{
    /// <summary>As recorded.</summary>
    Keep,
    /// <summary>Ordinal ascending: the canonical form.</summary>
    Ascending,
    /// <summary>Ordinal descending: a client that re-serializes schemas its own way.</summary>
    Descending,
}

/// <summary>Small JSON re-shaping helpers used to emulate different client programs.</summary>
internal static class JsonShapes
{
    private static readonly JsonSerializerOptions StringOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A deep copy with every object's keys in <paramref name="order"/> (arrays keep their order: it is meaning).</summary>
    public static JsonNode? Reorder(JsonNode? node, KeyOrder order)
    {
        switch (node)
        {
            case JsonObject o:
                IEnumerable<KeyValuePair<string, JsonNode?>> props = o;
                if (order == KeyOrder.Ascending) props = o.OrderBy(p => p.Key, StringComparer.Ordinal);
                else if (order == KeyOrder.Descending) props = o.OrderByDescending(p => p.Key, StringComparer.Ordinal);
                var copy = new JsonObject();
                foreach (var (k, v) in props.ToList()) copy[k] = Reorder(v, order);
                return copy;
            case JsonArray a:
                var arr = new JsonArray();
                foreach (var item in a) arr.Add(Reorder(item, order));
                return arr;
            default:
                return node?.DeepClone();
        }
    }

    /// <summary>Arguments JSON text as a client would resend it: compact (optionally with sorted keys) or Python-style spaced
    /// (<c>{"a": 1, "b": [1, 2]}</c>). Text that is not JSON is returned unchanged.</summary>
    public static string ReformatArguments(string arguments, bool spaced, KeyOrder order)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(arguments);
        }
        catch (JsonException)
        {
            return arguments;
        }
        node = Reorder(node, order);
        if (!spaced) return node?.ToJsonString(StringOptions) ?? "null";
        var sb = new StringBuilder(arguments.Length + 16);
        WriteSpaced(sb, node);
        return sb.ToString();
    }

    /// <summary>Parses arguments text into an object for an Anthropic <c>tool_use.input</c> (non-objects are wrapped).</summary>
    public static JsonObject ArgumentsObject(string arguments, KeyOrder order)
    {
        try
        {
            if (Reorder(JsonNode.Parse(arguments), order) is JsonObject o) return o;
        }
        catch (JsonException)
        {
        }
        return new JsonObject { ["arguments"] = arguments };
    }

    private static void WriteSpaced(StringBuilder sb, JsonNode? node)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                break;
            case JsonObject o:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in o)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    sb.Append(JsonSerializer.Serialize(k, StringOptions)).Append(": ");
                    WriteSpaced(sb, v);
                }
                sb.Append('}');
                break;
            case JsonArray a:
                sb.Append('[');
                for (var i = 0; i < a.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    WriteSpaced(sb, a[i]);
                }
                sb.Append(']');
                break;
            default:
                sb.Append(node.ToJsonString(StringOptions));
                break;
        }
    }

    /// <summary>A stable 64-bit FNV-1a hash of a string (seeds per-conversation shuffles reproducibly).</summary>
    public static ulong StableHash(string s)
    {
        var h = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(s))
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return h;
    }
}
