using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>The API dialect a client speaks or a provider expects.</summary>
public enum ApiFormat
{
    OpenAI,
    Anthropic,
}

public enum MessageRole
{
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

public enum PartKind
{
    Text,
    Image,
    ToolUse,
    ToolResult,
    /// <summary>Anything else (documents, thinking, audio…): passed on untouched to a provider of the client's own format.</summary>
    Other,
}

/// <summary>Anthropic's <c>cache_control</c> marker; <see cref="Ttl"/> is null for the default 5 minutes.</summary>
public sealed record CacheControl(string? Ttl)
{
    public static readonly CacheControl FiveMinutes = new((string?)null);
    public static readonly CacheControl OneHour = new("1h");

    public bool IsOneHour => Ttl == "1h";
}

/// <summary>
/// A vendor-neutral chat request. Every <see cref="JsonElement"/> points into <see cref="Document"/>, which this
/// envelope owns: nothing is copied out of the request body unless a stage has to change it.
/// Unknown fields are passed on to a provider of the client's own format, in place: top-level and message fields from
/// <c>Extra</c> lists, those of parts, tool calls, tools and functions from the elements kept as <c>Raw</c>
/// (see <see cref="UnknownFields"/>).
/// </summary>
public sealed class Envelope : IDisposable
{
    public required ApiFormat ClientFormat { get; init; }
    public JsonDocument? Document { get; init; }
    /// <summary>Owns the request-body buffer the <see cref="Document"/> reads from.</summary>
    public IDisposable? BodyOwner { get; init; }

    public required string Model { get; set; }
    public bool Stream { get; set; }
    /// <summary>OpenAI <c>stream_options.include_usage</c> as the client sent it (the gateway always asks upstream).</summary>
    public bool ClientWantsStreamUsage { get; set; }

    /// <summary>Top-level system blocks (Anthropic's <c>system</c>); OpenAI system messages stay in <see cref="Messages"/>.</summary>
    public List<ContentPart>? System { get; set; }
    /// <summary>True when the client sent <c>system</c> as a plain string (kept for a faithful round trip).</summary>
    public bool SystemWasString { get; set; }

    public List<ToolDefinition> Tools { get; set; } = [];
    public List<Message> Messages { get; set; } = [];

    public ToolChoice? ToolChoice { get; set; }
    /// <summary>The client's <c>tool_choice</c> object as received (its unknown fields go to a provider of the same format).</summary>
    public JsonElement ToolChoiceRaw { get; set; }
    /// <summary>OpenAI <c>stream_options</c> as received (its fields other than <c>include_usage</c> are passed on).</summary>
    public JsonElement StreamOptions { get; set; }
    public int? MaxTokens { get; set; }
    /// <summary>OpenAI's newer <c>max_completion_tokens</c> name was used.</summary>
    public bool MaxTokensIsCompletionTokens { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public List<string>? Stop { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public string? PromptCacheKey { get; set; }

    /// <summary>Unknown top-level fields, in the order received.</summary>
    public List<KeyValuePair<string, JsonElement>>? Extra { get; set; }

    /// <summary>Set by the Chunker: index of the first message of the Query block (the last user turn onwards).</summary>
    public int QueryStart { get; set; }

    /// <summary>Set by the Hasher: the cacheable prefix (model + system + tools) as lower-case hex.</summary>
    public string? PrefixHash { get; set; }

    public void Dispose()
    {
        Document?.Dispose();
        BodyOwner?.Dispose();
    }
}

/// <summary>
/// Text a model reads — a message's plain-string content, a part's text — kept as the client sent it until someone
/// needs it as a .NET string (see <see cref="JsonText"/>).
/// </summary>
public abstract class TextCarrier
{
    private JsonText _value;
    private string? _text;

    /// <summary>The text, decoded on first use when it came as a token.</summary>
    public string? Text
    {
        get => _text ??= _value.ToString();
        set => (_value, _text) = (value, value);
    }

    /// <summary>Sets the text from the client's JSON string token without decoding it.</summary>
    public JsonElement TextToken
    {
        set => (_value, _text) = (JsonText.From(value), null);
    }

    public bool HasText => !_value.IsNull;

    /// <summary>The text without decoding it.</summary>
    public JsonText TextValue => _value;
}

/// <summary>A message; <see cref="TextCarrier.Text"/> is its content when sent as a plain string.</summary>
public sealed class Message : TextCarrier
{
    public required MessageRole Role { get; set; }

    /// <summary>Content sent as an array of parts (or tool_use/tool_result blocks).</summary>
    public List<ContentPart>? Parts { get; set; }
    public List<ToolCall>? ToolCalls { get; set; }
    public string? ToolCallId { get; set; }
    public string? Name { get; set; }
    public List<KeyValuePair<string, JsonElement>>? Extra { get; set; }
    /// <summary>Set by the CacheInjector: put <c>cache_control</c> on the last block this message renders to.</summary>
    public CacheControl? CacheBreakpoint { get; set; }

    public bool HasContent => HasText || Parts is { Count: > 0 };
}

/// <summary>A content part or block; <see cref="TextCarrier.Text"/> is a Text part's text or a ToolResult given as a string.</summary>
public sealed class ContentPart : TextCarrier
{
    public required PartKind Kind { get; init; }
    public CacheControl? CacheControl { get; set; }

    /// <summary>ToolUse: the call id; ToolResult: the id of the call it answers.</summary>
    public string? Id { get; set; }
    /// <summary>ToolUse: the tool name.</summary>
    public string? Name { get; set; }
    /// <summary>ToolUse: the input as JSON text (canonicalized by the Canonicalizer).</summary>
    public string? Arguments { get; set; }
    /// <summary>ToolResult: content given as blocks; a plain string result is in <see cref="TextCarrier.Text"/>.</summary>
    public List<ContentPart>? Content { get; set; }
    public bool IsError { get; set; }

    /// <summary>Image: a URL (http(s) or data:).</summary>
    public string? Url { get; set; }
    /// <summary>Image: base64 data and its media type, when sent inline.</summary>
    public string? MediaType { get; set; }
    public string? Data { get; set; }

    /// <summary>The element as received, for parts passed on without translation.</summary>
    public JsonElement Raw { get; init; }
    /// <summary>An OpenAI text part holds fields beyond <c>type</c> and <c>text</c> (set at parse time from the property
    /// count, so a request without any pays no walk of <see cref="Raw"/> when written).</summary>
    public bool HasUnknownFields { get; init; }
}

public sealed class ToolCall
{
    public required string Id { get; set; }
    public required string Name { get; set; }
    /// <summary>JSON text of the arguments; left exactly as sent when it is not valid JSON.</summary>
    public required string Arguments { get; set; }
    /// <summary>The call as received: its unknown fields (and its function's) go to a provider of the same format.</summary>
    public JsonElement Raw { get; init; }
    /// <summary>The call or its function holds fields the gateway does not write itself (see <see cref="UnknownFields"/>).</summary>
    public bool HasUnknownFields { get; init; }
}

public sealed class ToolDefinition
{
    private JsonText _descriptionValue;
    private string? _description;

    public required string Name { get; init; }
    public string? Description
    {
        get => _description ??= _descriptionValue.ToString();
        init => (_descriptionValue, _description) = (value, value);
    }
    /// <summary>The client's JSON string token of <see cref="Description"/> (see <see cref="JsonText"/>).</summary>
    public JsonElement DescriptionToken
    {
        init => (_descriptionValue, _description) = (JsonText.From(value), null);
    }
    public bool HasDescription => !_descriptionValue.IsNull;
    /// <summary>The description without decoding it.</summary>
    public JsonText DescriptionValue => _descriptionValue;
    /// <summary>The JSON schema of the input as received (may be undefined).</summary>
    public JsonElement Parameters { get; init; }
    /// <summary>Canonical UTF-8 JSON of <see cref="Parameters"/>, set by the Canonicalizer.</summary>
    public byte[]? CanonicalParameters { get; set; }
    public bool? Strict { get; init; }
    public CacheControl? CacheControl { get; set; }
    /// <summary>A non-function tool (e.g. a provider's server tool), passed on raw to its own format only.</summary>
    public bool IsRaw { get; init; }
    public JsonElement Raw { get; init; }
    /// <summary>The tool or its function holds fields beyond those the gateway models (a BFCL <c>response</c> schema, an
    /// OpenAI-format <c>cache_control</c>…): only then are they looked for when the tool is hashed and written.</summary>
    public bool HasUnknownFields { get; init; }
}

public enum ToolChoiceKind
{
    Auto,
    None,
    Required,
    Function,
}

public sealed record ToolChoice(ToolChoiceKind Kind, string? FunctionName = null, bool? DisableParallel = null)
{
    // Shared: nearly every request with tools says "auto", and a record is never changed in place.
    public static readonly ToolChoice Auto = new(ToolChoiceKind.Auto);
    public static readonly ToolChoice None = new(ToolChoiceKind.None);
    public static readonly ToolChoice Required = new(ToolChoiceKind.Required);
}
