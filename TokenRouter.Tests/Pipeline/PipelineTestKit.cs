using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Tests.Pipeline;

/// <summary>An options monitor that always returns one value (the pipeline reads <c>CurrentValue</c> per request).</summary>
internal sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;
    public T Get(string? name) => value;
    public IDisposable? OnChange(Action<T, string?> listener) => null;
}

/// <summary>A clock the test moves by hand (timestamps in ticks of 1 µs).</summary>
internal sealed class ManualTime : TimeProvider
{
    private long _now = 1_000_000;
    public override long TimestampFrequency => 1_000_000;
    public override long GetTimestamp() => _now;
    public void Advance(TimeSpan by) => _now += (long)(by.TotalSeconds * TimestampFrequency);
}

/// <summary>What the pipeline sends upstream for one request.</summary>
internal sealed record Outbound(string Body, string PrefixHash, string FullHash)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;
}

internal static class Targets
{
    public static readonly RouteTarget OpenAI = new(new ProviderEndpoint { Name = "openai", Kind = ProviderKind.OpenAI }, "gpt-4o-2024-08-06");
    public static readonly RouteTarget DeepSeek = new(new ProviderEndpoint { Name = "deepseek", Kind = ProviderKind.DeepSeek }, "deepseek-chat");
    public static readonly RouteTarget Anthropic = new(new ProviderEndpoint { Name = "anthropic", Kind = ProviderKind.Anthropic }, "claude-sonnet-4-5");

    public static readonly RouteTarget[] All = [OpenAI, DeepSeek, Anthropic];

    public static RouteTarget For(ProviderKind kind) => kind switch
    {
        ProviderKind.OpenAI => OpenAI,
        ProviderKind.DeepSeek => DeepSeek,
        _ => Anthropic,
    };
}

/// <summary>The whole pure pipeline (Chunker → … → OutboundAdapter → Hasher) as the gateway builds it, without HTTP.</summary>
internal sealed class PipelineHarness
{
    public GatewayOptions Options { get; }
    public ToolOrderMemory Memory { get; }
    public RequestPipeline Pipeline { get; }

    public PipelineHarness(Action<GatewayOptions>? configure = null, TimeProvider? time = null)
    {
        Options = new GatewayOptions();
        configure?.Invoke(Options);
        Memory = new ToolOrderMemory(time ?? TimeProvider.System) { Ttl = Options.ToolOrderMemoryTtl };
        Pipeline = new RequestPipeline(
            new Canonicalizer(),
            new Arranger(Memory),
            new OutboundAdapters(Microsoft.Extensions.Options.Options.Create(Options)),
            new FixedOptionsMonitor<GatewayOptions>(Options));
    }

    public static ClientIdentity Identity(string scope) => new(scope, "test key " + scope, "hash-" + scope);

    public static Envelope Parse(string body, ApiFormat clientFormat) => Parse(Encoding.UTF8.GetBytes(body), clientFormat);

    public static Envelope Parse(byte[] body, ApiFormat clientFormat) => clientFormat == ApiFormat.OpenAI
        ? OpenAIInboundAdapter.Parse(body)
        : AnthropicInboundAdapter.Parse(body);

    public Outbound Run(string body, ApiFormat clientFormat, RouteTarget target, string scope = "tenant-a")
    {
        using var envelope = Parse(body, clientFormat);
        return Run(envelope, target, scope);
    }

    public Outbound Run(Envelope envelope, RouteTarget target, string scope = "tenant-a")
    {
        using var prepared = Pipeline.Prepare(envelope, target, Identity(scope));
        return new Outbound(Encoding.UTF8.GetString(prepared.Body.WrittenSpan), prepared.PrefixHash, prepared.FullHash);
    }

    public Outbound Run(string body, ApiFormat clientFormat, ProviderKind target, string scope = "tenant-a") =>
        Run(body, clientFormat, Targets.For(target), scope);
}

internal static class ApiErrors
{
    public static ApiError Parse(string body, ApiFormat format) =>
        Assert.Throws<ApiError>(() => PipelineHarness.Parse(body, format).Dispose());
}

/// <summary>One recorded agent session of <c>bench/workloads/agent-sessions.jsonl</c> (see SOURCES.md there).</summary>
internal sealed record AgentSession(string Id, string Source, JsonArray Tools, string? System, JsonArray Turns)
{
    public bool IsToolBench => Source.Contains("ToolBench", StringComparison.Ordinal);

    /// <summary>The model requests the agent made: system + turns[..k] for every k where turns[k] is an assistant turn.</summary>
    public IEnumerable<JsonObject> OpenAIRequests(string model = "gpt-4o")
    {
        for (var k = 1; k < Turns.Count; k++)
        {
            if ((string?)Turns[k]!["role"] == "assistant") yield return OpenAIRequest(k, model);
        }
    }

    public JsonObject OpenAIRequest(int turnCount, string model = "gpt-4o")
    {
        var messages = new JsonArray();
        if (System is not null) messages.Add(new JsonObject { ["role"] = "system", ["content"] = System });
        for (var i = 0; i < turnCount; i++) messages.Add(Turns[i]!.DeepClone());
        return new JsonObject
        {
            ["model"] = model,
            ["messages"] = messages,
            ["tools"] = Tools.DeepClone(),
            ["max_tokens"] = 512,
            ["temperature"] = 0,
        };
    }

    /// <summary>The same request as an Anthropic client would send it (tool results grouped into user turns).</summary>
    public JsonObject AnthropicRequest(int turnCount, string model = "claude-sonnet-4-5")
    {
        var tools = new JsonArray();
        foreach (var t in Tools)
        {
            var fn = t!["function"]!;
            var tool = new JsonObject { ["name"] = fn["name"]!.DeepClone() };
            if (fn["description"] is { } d) tool["description"] = d.DeepClone();
            tool["input_schema"] = fn["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object" };
            tools.Add(tool);
        }
        var messages = new JsonArray();
        JsonArray? open = null;
        string? openRole = null;
        for (var i = 0; i < turnCount; i++)
        {
            var turn = Turns[i]!;
            var role = (string)turn["role"]!;
            var blocks = new JsonArray();
            switch (role)
            {
                case "user":
                    blocks.Add(new JsonObject { ["type"] = "text", ["text"] = turn["content"]!.DeepClone() });
                    break;
                case "assistant":
                    if (turn["content"] is JsonValue c && ((string?)c) is { Length: > 0 } text)
                        blocks.Add(new JsonObject { ["type"] = "text", ["text"] = text });
                    if (turn["tool_calls"] is JsonArray calls)
                    {
                        foreach (var call in calls)
                        {
                            var args = (string)call!["function"]!["arguments"]!;
                            JsonNode input;
                            try { input = JsonNode.Parse(args) as JsonObject ?? new JsonObject(); }
                            catch (JsonException) { input = new JsonObject(); }
                            blocks.Add(new JsonObject
                            {
                                ["type"] = "tool_use",
                                ["id"] = call["id"]!.DeepClone(),
                                ["name"] = call["function"]!["name"]!.DeepClone(),
                                ["input"] = input,
                            });
                        }
                    }
                    break;
                default:
                    blocks.Add(new JsonObject
                    {
                        ["type"] = "tool_result",
                        ["tool_use_id"] = turn["tool_call_id"]!.DeepClone(),
                        ["content"] = turn["content"]!.DeepClone(),
                    });
                    role = "user";
                    break;
            }
            if (blocks.Count == 0) continue;
            if (open is not null && openRole == role)
            {
                foreach (var b in blocks.ToArray())
                {
                    blocks.Remove(b);
                    open.Add(b);
                }
                continue;
            }
            open = blocks;
            openRole = role;
            messages.Add(new JsonObject { ["role"] = role, ["content"] = blocks });
        }
        var body = new JsonObject { ["model"] = model, ["max_tokens"] = 512 };
        if (System is not null) body["system"] = System;
        body["tools"] = tools;
        body["messages"] = messages;
        return body;
    }
}

/// <summary>Loads the recorded sessions once per test run.</summary>
internal static class AgentSessions
{
    private static readonly Lazy<IReadOnlyList<AgentSession>> Sessions = new(Load);

    public static IReadOnlyList<AgentSession> All => Sessions.Value;

    /// <summary>A spread of sessions from both sources, small enough to keep the suite fast.</summary>
    public static IEnumerable<AgentSession> Sample(int tauBench, int toolBench)
    {
        var tau = All.Where(s => !s.IsToolBench).ToList();
        var step = Math.Max(1, tau.Count / tauBench);
        for (var i = 0; i < tau.Count && i / step < tauBench; i += step) yield return tau[i];
        foreach (var s in All.Where(s => s.IsToolBench).Take(toolBench)) yield return s;
    }

    public static string FilePath
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "TokenRouter.sln"))) dir = dir.Parent;
            if (dir is null) Assert.Fail($"No folder containing TokenRouter.sln above {AppContext.BaseDirectory}: cannot locate bench/workloads/agent-sessions.jsonl.");
            return Path.Combine(dir!.FullName, "bench", "workloads", "agent-sessions.jsonl");
        }
    }

    private static List<AgentSession> Load()
    {
        var path = FilePath;
        if (!File.Exists(path))
            Assert.Fail($"The recorded agent sessions are missing: expected {path} (a copy of ../shared/workloads/agent-sessions.jsonl, kept in the repository).");
        var sessions = new List<AgentSession>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var o = JsonNode.Parse(line)!.AsObject();
            sessions.Add(new AgentSession((string)o["id"]!, (string)o["source"]!, o["tools"]!.AsArray(), (string?)o["system"], o["turns"]!.AsArray()));
        }
        Assert.True(sessions.Count > 0, $"{path} holds no sessions.");
        return sessions;
    }
}

/// <summary>What a client variant may change without changing the request's meaning.</summary>
[Flags]
internal enum Variation
{
    None = 0,
    ToolOrder = 1,
    KeyOrder = 2,
    Whitespace = 4,
    ArgumentsFormatting = 8,
    NumberFormats = 16,
    StringEscapes = 32,
    All = ToolOrder | KeyOrder | Whitespace | ArgumentsFormatting | NumberFormats | StringEscapes,
}

/// <summary>
/// Renders a request the way a different client program would: tools in another order, object keys in another order
/// (recursively, schemas included), other whitespace and indentation, tool-call arguments re-serialized with other
/// spacing and key order, numbers inside schemas and arguments written as 1 / 1.0 / 1e0, and strings escaped
/// differently. Numbers outside schemas and arguments keep their text (the gateway reads them as typed values).
/// </summary>
internal sealed class ClientVariant(Random rng, Variation variation = Variation.All)
{
    private static readonly string[] Spaces = ["", "", " ", "  ", "\n", "\n    ", "\t", "\r\n  "];

    public string Render(JsonNode body)
    {
        var copy = body.DeepClone();
        if (Has(Variation.ToolOrder) && copy["tools"] is JsonArray tools) Shuffle(tools);
        var sb = new StringBuilder();
        Write(sb, copy, freeNumbers: false, path: "");
        return sb.ToString();
    }

    /// <summary>Renders one JSON value (tool-call arguments) with this variant's formatting; numbers may be rewritten.</summary>
    public string RenderValue(JsonNode? value)
    {
        var sb = new StringBuilder();
        Write(sb, value, freeNumbers: true, path: "$args");
        return sb.ToString();
    }

    private bool Has(Variation v) => (variation & v) != 0;

    private void Shuffle(JsonArray array)
    {
        var items = array.ToList();
        array.Clear();
        foreach (var item in items.OrderBy(_ => rng.Next())) array.Add(item);
    }

    private void Ws(StringBuilder sb)
    {
        if (Has(Variation.Whitespace)) sb.Append(Spaces[rng.Next(Spaces.Length)]);
    }

    private void Write(StringBuilder sb, JsonNode? node, bool freeNumbers, string path)
    {
        Ws(sb);
        switch (node)
        {
            case null:
                sb.Append("null");
                break;
            case JsonObject o:
                {
                    sb.Append('{');
                    var props = o.ToList();
                    if (Has(Variation.KeyOrder)) props = [.. props.OrderBy(_ => rng.Next())];
                    for (var i = 0; i < props.Count; i++)
                    {
                        if (i > 0) { Ws(sb); sb.Append(','); }
                        var (name, value) = props[i];
                        WriteString(sb, name);
                        Ws(sb);
                        sb.Append(':');
                        var childFree = freeNumbers || IsSchemaOrInput(path, name);
                        if (name == "arguments" && value is JsonValue v && v.GetValueKind() == JsonValueKind.String && Has(Variation.ArgumentsFormatting))
                        {
                            Ws(sb);
                            WriteString(sb, Reformat((string)v!));
                        }
                        else Write(sb, value, childFree, path + "." + name);
                    }
                    Ws(sb);
                    sb.Append('}');
                    break;
                }
            case JsonArray a:
                {
                    sb.Append('[');
                    for (var i = 0; i < a.Count; i++)
                    {
                        if (i > 0) { Ws(sb); sb.Append(','); }
                        Write(sb, a[i], freeNumbers, path + "[]");
                    }
                    Ws(sb);
                    sb.Append(']');
                    break;
                }
            default:
                {
                    var value = node.AsValue();
                    switch (value.GetValueKind())
                    {
                        case JsonValueKind.String:
                            WriteString(sb, (string)value!);
                            break;
                        case JsonValueKind.Number:
                            var raw = value.ToJsonString();
                            sb.Append(freeNumbers && Has(Variation.NumberFormats) ? NumberVariant(raw) : raw);
                            break;
                        default:
                            sb.Append(value.ToJsonString());
                            break;
                    }
                    break;
                }
        }
        Ws(sb);
    }

    private static bool IsSchemaOrInput(string path, string name) =>
        (name == "parameters" && path.EndsWith(".function", StringComparison.Ordinal))
        || (name == "input_schema" && path.EndsWith("tools[]", StringComparison.Ordinal))
        || (name == "input" && path.EndsWith("content[]", StringComparison.Ordinal));

    /// <summary>Tool-call arguments as another client would write them; text that is not JSON stays as it is.</summary>
    private string Reformat(string arguments)
    {
        JsonNode? parsed;
        try { parsed = JsonNode.Parse(arguments); }
        catch (JsonException) { return arguments; }
        return RenderValue(parsed);
    }

    /// <summary>The same number in another notation: 12 → 12.0 / 1.2e1 / 120E-1; 0.5 → 0.50 / 5e-1.</summary>
    public string NumberVariant(string raw)
    {
        if (!decimal.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)) return raw;
        var neg = value < 0;
        var digits = Math.Abs(value).ToString(CultureInfo.InvariantCulture);
        var point = digits.IndexOf('.');
        var mantissa = point < 0 ? digits : digits.Remove(point, 1);
        var exponent = point < 0 ? 0 : -(digits.Length - point - 1);
        var trimmed = mantissa.TrimStart('0');
        if (trimmed.Length == 0) trimmed = "0";
        var sign = neg ? "-" : "";
        if (trimmed == "0") return new[] { "0", "-0", "0.0", "0e0", "0E+2", "-0.00" }[rng.Next(6)];
        var choices = new[]
        {
            sign + digits,
            sign + digits + (point < 0 ? ".0" : "0"),
            sign + trimmed + "e" + exponent.ToString(CultureInfo.InvariantCulture),
            sign + trimmed + "0E" + (exponent - 1).ToString(CultureInfo.InvariantCulture),
            sign + "0." + trimmed + "e" + (exponent + trimmed.Length >= 0 ? "+" : "") + (exponent + trimmed.Length).ToString(CultureInfo.InvariantCulture),
        };
        return choices[rng.Next(choices.Length)];
    }

    private void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        var escapes = Has(Variation.StringEscapes);
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append(escapes && rng.Next(2) == 0 ? "\\u000a" : "\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '/' when escapes && rng.Next(2) == 0: sb.Append("\\/"); break;
                default:
                    if (c < 0x20 || (escapes && (c > 0x7E || rng.Next(8) == 0)))
                        sb.Append("\\u").Append(((int)c).ToString(rng.Next(2) == 0 ? "x4" : "X4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}

/// <summary>JSON equality by meaning: object key order and number notation do not matter, array order does.</summary>
internal static class JsonMeaning
{
    public static bool Equal(JsonElement a, JsonElement b)
    {
        if (a.ValueKind != b.ValueKind) return false;
        switch (a.ValueKind)
        {
            case JsonValueKind.Object:
                var pa = a.EnumerateObject().ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal);
                var pb = b.EnumerateObject().ToDictionary(p => p.Name, p => p.Value, StringComparer.Ordinal);
                return pa.Count == pb.Count && pa.All(kv => pb.TryGetValue(kv.Key, out var v) && Equal(kv.Value, v));
            case JsonValueKind.Array:
                var ea = a.EnumerateArray().ToList();
                var eb = b.EnumerateArray().ToList();
                return ea.Count == eb.Count && ea.Zip(eb).All(p => Equal(p.First, p.Second));
            case JsonValueKind.String:
                return a.GetString() == b.GetString();
            case JsonValueKind.Number:
                return decimal.TryParse(a.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var da)
                       && decimal.TryParse(b.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var db)
                    ? da == db
                    : a.GetDouble().Equals(b.GetDouble());
            default:
                return true;
        }
    }

    public static bool Equal(string a, string b)
    {
        using var da = JsonDocument.Parse(a);
        using var db = JsonDocument.Parse(b);
        return Equal(da.RootElement, db.RootElement);
    }

    /// <summary>Compact JSON text with key order and strings as given (for golden comparisons).</summary>
    public static string Compact(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions)) doc.RootElement.WriteTo(w);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

/// <summary>Reads the cache breakpoints of an Anthropic request body in prompt order: tools → system → messages.</summary>
internal static class AnthropicBreakpoints
{
    /// <summary>(location, ttl) for every <c>cache_control</c>; ttl is "5m" when none is given.</summary>
    public static List<(string At, string Ttl)> InPromptOrder(JsonElement body)
    {
        var found = new List<(string, string)>();
        if (body.TryGetProperty("tools", out var tools))
        {
            var i = 0;
            foreach (var t in tools.EnumerateArray()) Add(found, t, $"tools.{i++}");
        }
        if (body.TryGetProperty("system", out var system) && system.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var b in system.EnumerateArray()) Block(found, b, $"system.{i++}");
        }
        var m = 0;
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            if (message.GetProperty("content") is { ValueKind: JsonValueKind.Array } content)
            {
                var i = 0;
                foreach (var b in content.EnumerateArray()) Block(found, b, $"messages.{m}.content.{i++}");
            }
            m++;
        }
        return found;
    }

    private static void Block(List<(string, string)> found, JsonElement block, string at)
    {
        if (block.TryGetProperty("content", out var inner) && inner.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var b in inner.EnumerateArray()) Block(found, b, $"{at}.content.{i++}");
        }
        Add(found, block, at);
    }

    private static void Add(List<(string, string)> found, JsonElement e, string at)
    {
        if (!e.TryGetProperty("cache_control", out var cc)) return;
        found.Add((at, cc.TryGetProperty("ttl", out var ttl) ? ttl.GetString()! : "5m"));
    }

    /// <summary>Counts every <c>cache_control</c> anywhere in the body (nothing hides from the 4-breakpoint limit).</summary>
    public static int CountAnywhere(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().Sum(p => (p.Name == "cache_control" ? 1 : 0) + CountAnywhere(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().Sum(CountAnywhere),
        _ => 0,
    };
}
