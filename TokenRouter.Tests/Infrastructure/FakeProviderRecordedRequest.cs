using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// One HTTP request as the <see cref="FakeProvider"/> received it. Immutable except for the
/// outcome flags (<see cref="WasCancelled"/>, <see cref="Completed"/>), which the server sets
/// when the exchange ends.
/// </summary>
public sealed class RecordedRequest
{
    private readonly Lazy<JsonElement?> _json;
    private volatile bool _wasCancelled;
    private volatile bool _completed;

    internal RecordedRequest(
        int index,
        string method,
        string path,
        string queryString,
        IReadOnlyDictionary<string, string> headers,
        byte[] body,
        DateTimeOffset receivedAt)
    {
        Index = index;
        Method = method;
        Path = path;
        QueryString = queryString;
        Headers = headers;
        Body = body;
        BodyText = Encoding.UTF8.GetString(body);
        ReceivedAt = receivedAt;
        _json = new Lazy<JsonElement?>(ParseElement, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>0-based arrival order at this provider.</summary>
    public int Index { get; }

    public string Method { get; }

    /// <summary>Path only, e.g. <c>/v1/chat/completions</c>.</summary>
    public string Path { get; }

    /// <summary>Query string including the leading <c>?</c>, or empty.</summary>
    public string QueryString { get; }

    /// <summary>Path plus query string as received, e.g. <c>/v1/models?limit=2</c>.</summary>
    public string PathAndQuery => Path + QueryString;

    /// <summary>Request headers; names are case-insensitive, repeated values are joined with <c>", "</c>.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary>The raw request body bytes exactly as received.</summary>
    public byte[] Body { get; }

    /// <summary>The body decoded as UTF-8.</summary>
    public string BodyText { get; }

    public DateTimeOffset ReceivedAt { get; }

    /// <summary>The body parsed as JSON, or <c>null</c> when the body is empty or not JSON. Cached; read-only.</summary>
    public JsonElement? Json => _json.Value;

    /// <summary>A fresh, mutable <see cref="JsonNode"/> of the body (each call parses again), or <c>null</c> when it is not JSON.</summary>
    public JsonNode? ParseJsonNode()
    {
        if (Json is null)
        {
            return null;
        }

        return JsonNode.Parse(Body);
    }

    /// <summary>A new <see cref="JsonDocument"/> over the body; the caller disposes it. Throws when the body is not JSON.</summary>
    public JsonDocument ParseJsonDocument() => JsonDocument.Parse(Body);

    /// <summary>The body's top-level <c>model</c>, if any.</summary>
    public string? Model => TryGetString("model");

    /// <summary>True when the body has <c>"stream": true</c>.</summary>
    public bool IsStreaming => TryGetBool(Json, "stream");

    /// <summary>True when the body has <c>"stream_options": {"include_usage": true}</c>.</summary>
    public bool IncludeUsage =>
        Json is { ValueKind: JsonValueKind.Object } root
        && root.TryGetProperty("stream_options", out var options)
        && TryGetBool(options, "include_usage");

    /// <summary>True when the path targets the Anthropic Messages API (<c>.../messages</c>).</summary>
    public bool IsAnthropicMessages => Path.EndsWith("/messages", StringComparison.Ordinal);

    /// <summary>The header value, or <c>null</c> when absent (case-insensitive).</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    /// <summary>True once the client aborted the request before the fake finished answering it.</summary>
    public bool WasCancelled
    {
        get => _wasCancelled;
        internal set => _wasCancelled = value;
    }

    /// <summary>True once the responder returned (normally, or by deliberately dropping the connection).</summary>
    public bool Completed
    {
        get => _completed;
        internal set => _completed = value;
    }

    public override string ToString() => $"#{Index} {Method} {PathAndQuery} ({Body.Length} bytes)";

    private string? TryGetString(string property) =>
        Json is { ValueKind: JsonValueKind.Object } root
        && root.TryGetProperty(property, out var value)
        && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    private static bool TryGetBool(JsonElement? element, string property) =>
        element is { ValueKind: JsonValueKind.Object } obj
        && obj.TryGetProperty(property, out var value)
        && value.ValueKind == JsonValueKind.True;

    private JsonElement? ParseElement()
    {
        if (Body.Length == 0)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(Body);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
