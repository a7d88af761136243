using System.Text;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// One hostile request, written as raw HTTP/1.1 (request line as-is, header values as raw bytes) plus what is expected
/// of the gateway's answer beyond the invariants every case gets (see <see cref="HostileCorpusTests"/>).
/// </summary>
public sealed record HostileCase(string Name, string Method, string Target)
{
    public byte[]? Body { get; init; }

    /// <summary>Header name and raw value bytes, sent exactly (no encoding, no validation).</summary>
    public IReadOnlyList<(string Name, byte[] Value)> Headers { get; init; } = [];

    /// <summary>Send the body with <c>Transfer-Encoding: chunked</c> and no <c>Content-Length</c>.</summary>
    public bool Chunked { get; init; }

    /// <summary>The exact status expected, or null.</summary>
    public int? Status { get; init; }

    /// <summary>Any 4xx expected (and then nothing may have reached the provider unless <see cref="MaxUpstreamBodyBytes"/> relaxes it).</summary>
    public bool ClientError { get; init; }

    /// <summary>Any 2xx expected.</summary>
    public bool Success { get; init; }

    /// <summary>A field name the error message must mention.</summary>
    public string? Field { get; init; }

    /// <summary>Nothing may reach the provider.</summary>
    public bool NothingUpstream { get; init; }

    /// <summary>The provider may see a request, but fewer body bytes than this in total.</summary>
    public long? MaxUpstreamBodyBytes { get; init; }

    /// <summary>A request must have reached the provider with exactly this (decoded) path.</summary>
    public string? UpstreamPath { get; init; }

    /// <summary>Request headers that must not reach the provider.</summary>
    public IReadOnlyList<string> ForbiddenUpstreamHeaders { get; init; } = [];

    /// <summary>The client's API format by the gateway's rule: Anthropic for <c>/v1/messages…</c> or with
    /// <c>x-api-key</c>/<c>anthropic-version</c>, OpenAI otherwise.</summary>
    public bool AnthropicClient
    {
        get
        {
            var path = Target.Split('?')[0];
            if (path.Equals("/v1/messages", StringComparison.OrdinalIgnoreCase)
                || path.StartsWith("/v1/messages/", StringComparison.OrdinalIgnoreCase)) return true;
            return Headers.Any(h => h.Name.Equals("x-api-key", StringComparison.OrdinalIgnoreCase)
                                    || h.Name.Equals("anthropic-version", StringComparison.OrdinalIgnoreCase));
        }
    }

    public override string ToString() => Name;
}

/// <summary>A case's name as a theory argument: serializable (so every case is its own test) and shown in full
/// (xUnit cuts string arguments in display names at 50 characters).</summary>
public sealed class HostileCaseName : Xunit.Abstractions.IXunitSerializable
{
    public HostileCaseName() { }

    public HostileCaseName(string value) => Value = value;

    public string Value { get; private set; } = "";

    public void Deserialize(Xunit.Abstractions.IXunitSerializationInfo info) => Value = info.GetValue<string>(nameof(Value));

    public void Serialize(Xunit.Abstractions.IXunitSerializationInfo info) => info.AddValue(nameof(Value), Value);

    public override string ToString() => Value;
}

/// <summary>The hostile-input corpus (issue #16 and its neighbours), generated combinatorially.</summary>
public static class HostileCorpus
{
    public const long BodyLimit = 64 * 1024;
    private const string Key = GatewayFactory.ClientKey;
    private const string ChatModel = "gpt-4o";
    private const string ClaudeModel = "claude-sonnet-4-5";
    private const string Hi = """[{"role":"user","content":"hi"}]""";

    private static readonly Lazy<IReadOnlyDictionary<string, HostileCase>> Cases = new(Build);

    public static IReadOnlyDictionary<string, HostileCase> All => Cases.Value;

    public static IEnumerable<object[]> Names => All.Keys.Select(n => new object[] { new HostileCaseName(n) });

    // ---- header helpers ----------------------------------------------------------------------------------------

    private static (string, byte[]) H(string name, string value) => (name, Encoding.UTF8.GetBytes(value));
    private static (string, byte[]) HB(string name, params byte[] value) => (name, value);

    private static readonly (string, byte[])[] JsonType = [H("Content-Type", "application/json")];
    private static readonly (string, byte[])[] Bearer = [H("Authorization", "Bearer " + Key)];
    private static readonly (string, byte[])[] AnthropicKey = [H("x-api-key", Key), H("anthropic-version", "2023-06-01")];

    private static byte[] U(string s) => Encoding.UTF8.GetBytes(s);

    private static HostileCase Post(string name, string target, byte[] body, IEnumerable<(string, byte[])> auth, params (string, byte[])[] extra) =>
        new(name, "POST", target) { Body = body, Headers = [.. auth, .. JsonType, .. extra] };

    private static HostileCase Chat(string name, string body, params (string, byte[])[] extra) => Post(name, "/v1/chat/completions", U(body), Bearer, extra);
    private static HostileCase Messages(string name, string body, params (string, byte[])[] extra) => Post(name, "/v1/messages", U(body), AnthropicKey, extra);
    private static HostileCase ChatBytes(string name, byte[] body) => Post(name, "/v1/chat/completions", body, Bearer);
    private static HostileCase MessagesBytes(string name, byte[] body) => Post(name, "/v1/messages", body, AnthropicKey);

    private static string ChatBody(string extra = "", string messages = Hi, string model = ChatModel) =>
        $$"""{"model":"{{model}}","messages":{{messages}}{{(extra.Length > 0 ? "," + extra : "")}}}""";

    private static string MessagesBody(string extra = "", string messages = Hi, string model = ClaudeModel) =>
        $$"""{"model":"{{model}}","max_tokens":64,"messages":{{messages}}{{(extra.Length > 0 ? "," + extra : "")}}}""";

    private static IReadOnlyDictionary<string, HostileCase> Build()
    {
        var list = new List<HostileCase>();
        Traversal(list);
        WrongMethods(list);
        Numbers(list);
        Surrogates(list);
        Malformed(list);
        HeaderCases(list);
        Auth(list);
        Passthrough(list);
        UnknownModelsAndPaths(list);
        Simulator(list);

        var map = new Dictionary<string, HostileCase>(StringComparer.Ordinal);
        foreach (var c in list)
        {
            if (!map.TryAdd(c.Name, c)) throw new InvalidOperationException($"Duplicate hostile case name '{c.Name}'.");
        }
        return map;
    }

    // ---- 1. path traversal on passthrough (raw request line) ---------------------------------------------------

    private static void Traversal(List<HostileCase> list)
    {
        string[] paths =
        [
            "/v1/../stats",
            "/v1/%2e%2e/stats",
            "/v1/%2E%2E/%2e%2e/stats",
            "/v1/%252e%252e/%252e%252e/stats",
            "/v1/%25252e%25252e/%25252e%25252e/stats",
            "/v1/.%2e/stats",
            "/v1/%2e./stats",
            "/v1/./embeddings",
            "/v1/%2e/embeddings",
            "/v1/..%5c..%5cstats",
            "/v1/%5c..%5c..%5cstats",
            "/v1/..\\..\\stats",
            "/v1/..%2f..%2fstats",
            "/v1/%2f..%2f..%2fstats",
            "/v1/%2e%2e%2f%2e%2e%2fstats",
            "/v1/%c0%ae%c0%ae/%c0%ae%c0%ae/stats",
            "/v1/embeddings/../../../stats",
            "/v1/embeddings/%2e%2e/%2E%2e/%2e%2e/admin?x=1",
            "/v1/files/..%252f..%252fstats",
            "/v1/.%252e/stats",
        ];
        var embeddingsBody = U("""{"model":"text-embedding-3-small","input":"x"}""");
        foreach (var path in paths)
        {
            foreach (var method in new[] { "GET", "POST" })
            {
                foreach (var (authName, auth) in new[] { ("bearer", Bearer), ("x-api-key", AnthropicKey) })
                {
                    list.Add(new HostileCase($"traversal {method} {path} [{authName}]", method, path)
                    {
                        Body = method == "POST" ? embeddingsBody : null,
                        Headers = method == "POST" ? [.. auth, .. JsonType] : auth,
                        Status = 400,
                        NothingUpstream = true,
                    });
                }
            }
        }

        foreach (var path in new[] { "/v1/messages/../../../stats", "/v1/messages/%2e%2e/%2e%2e/%2e%2e/stats", "/v1/messages/count_tokens/..%5c..%5c..%5cx" })
        {
            list.Add(new HostileCase($"traversal POST {path} [x-api-key]", "POST", path)
            {
                Body = U(MessagesBody()),
                Headers = [.. AnthropicKey, .. JsonType],
                Status = 400,
                NothingUpstream = true,
            });
        }
    }

    // ---- 2. wrong methods on the gateway's own endpoints -------------------------------------------------------

    private static void WrongMethods(List<HostileCase> list)
    {
        foreach (var method in new[] { "GET", "PUT", "DELETE", "PATCH", "HEAD" })
        {
            var withBody = method is "PUT" or "PATCH";
            list.Add(new HostileCase($"method {method} /v1/chat/completions", method, "/v1/chat/completions")
            {
                Body = withBody ? U(ChatBody()) : null,
                Headers = withBody ? [.. Bearer, .. JsonType] : Bearer,
                Status = 405,
                NothingUpstream = true,
            });
            list.Add(new HostileCase($"method {method} /v1/messages", method, "/v1/messages")
            {
                Body = withBody ? U(MessagesBody()) : null,
                Headers = withBody ? [.. AnthropicKey, .. JsonType] : AnthropicKey,
                Status = 405,
                NothingUpstream = true,
            });
        }
    }

    // ---- 3. non-finite / huge numbers --------------------------------------------------------------------------

    private static void Numbers(List<HostileCase> list)
    {
        (string Field, string Literal, bool ValidJson)[] chat =
        [
            ("temperature", "1e999", true), ("temperature", "-1e400", true), ("temperature", "Infinity", false),
            ("top_p", "1e999", true), ("top_p", "-1e400", true),
            ("max_tokens", "1e999", true), ("max_tokens", "-1", true), ("max_tokens", "1.5", true),
            ("max_completion_tokens", "1e999", true),
            ("n", "1e40", true),
            ("presence_penalty", "NaN", false), ("frequency_penalty", "-1e999", true),
            ("seed", "1e30", true),
        ];
        foreach (var (field, literal, valid) in chat)
        {
            list.Add(Chat($"number chat {field}={literal}", ChatBody($"\"{field}\":{literal}")) with
            {
                Status = 400,
                NothingUpstream = true,
                Field = valid ? field : null,
            });
        }
        list.Add(Chat("number chat stream temperature=1e999", ChatBody("\"stream\":true,\"temperature\":1e999")) with
        {
            Status = 400,
            NothingUpstream = true,
            Field = "temperature",
        });

        (string Field, string Literal, bool ValidJson)[] messages =
        [
            ("temperature", "1e999", true), ("temperature", "-1e400", true), ("temperature", "NaN", false),
            ("top_p", "1e999", true), ("top_k", "1e999", true),
            ("max_tokens", "1e999", true), ("max_tokens", "-1", true), ("max_tokens", "1.5", true),
        ];
        foreach (var (field, literal, valid) in messages)
        {
            var body = field == "max_tokens"
                ? $$"""{"model":"{{ClaudeModel}}","max_tokens":{{literal}},"messages":{{Hi}}}"""
                : MessagesBody($"\"{field}\":{literal}");
            list.Add(Messages($"number messages {field}={literal}", body) with
            {
                Status = 400,
                NothingUpstream = true,
                Field = valid ? field : null,
            });
        }
        foreach (var (field, literal) in new[] { ("temperature", "1e999"), ("top_p", "1e999"), ("top_k", "1e999"), ("max_tokens", "1e999") })
        {
            var body = field == "max_tokens"
                ? $$"""{"model":"{{ChatModel}}","max_tokens":{{literal}},"messages":{{Hi}}}"""
                : MessagesBody($"\"{field}\":{literal}", model: ChatModel);
            list.Add(Messages($"number messages->openai {field}={literal}", body) with
            {
                Status = 400,
                NothingUpstream = true,
                Field = field,
            });
        }
        list.Add(Messages("number messages stream temperature=1e999", MessagesBody("\"stream\":true,\"temperature\":1e999")) with
        {
            Status = 400,
            NothingUpstream = true,
            Field = "temperature",
        });
    }

    // ---- 4. lone surrogates and invalid UTF-8 ------------------------------------------------------------------

    private static void Surrogates(List<HostileCase> list)
    {
        (string Where, Func<string, string> Body)[] chat =
        [
            ("user", s => ChatBody($"\"user\":\"a{s}b\"")),
            ("unknown top-level field", s => ChatBody($"\"x_extra\":\"{s}\"")),
            ("unknown message field", s => ChatBody(messages: Q("[{'role':'user','content':'hi','x_note':'@S'}]", s))),
            ("unknown content-part field", s => ChatBody(messages: Q("[{'role':'user','content':[{'type':'text','text':'hi'},{'type':'x_part','x_field':'@S'}]}]", s))),
            ("tool description", s => ChatBody(Q("'tools':[{'type':'function','function':{'name':'f','description':'@S','parameters':{'type':'object','properties':{'a':{'type':'string'}}}}}]", s))),
            ("tool schema property name", s => ChatBody(Q("'tools':[{'type':'function','function':{'name':'f','parameters':{'type':'object','properties':{'@S':{'type':'string'}}}}}]", s))),
            ("tool schema property value", s => ChatBody(Q("'tools':[{'type':'function','function':{'name':'f','parameters':{'type':'object','properties':{'a':{'type':'string','description':'@S'}}}}}]", s))),
            ("tool-call arguments", s => ChatBody(messages: Q("[{'role':'user','content':'hi'},{'role':'assistant','content':null,'tool_calls':[{'id':'call_1','type':'function','function':{'name':'f','arguments':'{\\'a\\':\\'@S\\'}'}}]},{'role':'tool','tool_call_id':'call_1','content':'ok'}]", s))),
            ("system prompt", s => ChatBody(messages: Q("[{'role':'system','content':'@S'},{'role':'user','content':'hi'}]", s))),
            ("message text", s => ChatBody(messages: Q("[{'role':'user','content':'x@Sy'}]", s))),
        ];
        (string Where, Func<string, string> Body)[] messages =
        [
            ("metadata.user_id", s => MessagesBody(Q("'metadata':{'user_id':'@S'}", s))),
            ("unknown top-level field", s => MessagesBody($"\"x_extra\":\"{s}\"")),
            ("unknown message field", s => MessagesBody(messages: Q("[{'role':'user','content':'hi','x_note':'@S'}]", s))),
            ("unknown content-block field", s => MessagesBody(messages: Q("[{'role':'user','content':[{'type':'text','text':'hi'},{'type':'x_block','x_field':'@S'}]}]", s))),
            ("tool description", s => MessagesBody(Q("'tools':[{'name':'f','description':'@S','input_schema':{'type':'object','properties':{'a':{'type':'string'}}}}]", s))),
            ("tool schema property name", s => MessagesBody(Q("'tools':[{'name':'f','input_schema':{'type':'object','properties':{'@S':{'type':'string'}}}}]", s))),
            ("tool schema property value", s => MessagesBody(Q("'tools':[{'name':'f','input_schema':{'type':'object','properties':{'a':{'type':'string','description':'@S'}}}}]", s))),
            ("tool_use input", s => MessagesBody(messages: Q("[{'role':'user','content':'hi'},{'role':'assistant','content':[{'type':'tool_use','id':'toolu_1','name':'f','input':{'a':'@S'}}]},{'role':'user','content':[{'type':'tool_result','tool_use_id':'toolu_1','content':'ok'}]}]", s))),
            ("system prompt", s => MessagesBody($"\"system\":\"{s}\"")),
            ("message text", s => MessagesBody(messages: Q("[{'role':'user','content':'x@Sy'}]", s))),
        ];
        string[] surrogates = [@"\ud800", @"\udfff", @"\ud800\u0041"];
        foreach (var s in surrogates)
        {
            foreach (var (where, body) in chat)
                list.Add(Chat($"surrogate chat {where} {s}", body(s)) with { Status = 400, NothingUpstream = true });
            foreach (var (where, body) in messages)
                list.Add(Messages($"surrogate messages {where} {s}", body(s)) with { Status = 400, NothingUpstream = true });
            list.Add(Messages($"surrogate messages->openai metadata.user_id {s}", MessagesBody(Q("'metadata':{'user_id':'@S'}", s), model: ChatModel)) with { Status = 400, NothingUpstream = true });
            list.Add(Messages($"surrogate messages->openai message text {s}", MessagesBody(messages: Q("[{'role':'user','content':'x@Sy'}]", s), model: ChatModel)) with { Status = 400, NothingUpstream = true });
            // Passed through byte for byte: only the invariants (never 5xx, shapes, no escape, no key leak).
            list.Add(Post($"surrogate passthrough embeddings input {s}", "/v1/embeddings", U(Q("{'model':'text-embedding-3-small','input':'@S'}", s)), Bearer));
        }

        (string Name, byte[] Bytes)[] invalid = [("0xFF", [0xFF]), ("0xC0 0xAF", [0xC0, 0xAF]), ("0xED 0xA0 0x80", [0xED, 0xA0, 0x80])];
        foreach (var (name, bytes) in invalid)
        {
            list.Add(ChatBytes($"invalid utf-8 chat message text {name}", Splice(ChatBody(messages: """[{"role":"user","content":"x@@y"}]"""), bytes)) with { Status = 400, NothingUpstream = true });
            list.Add(ChatBytes($"invalid utf-8 chat user {name}", Splice(ChatBody("\"user\":\"@@\""), bytes)) with { Status = 400, NothingUpstream = true });
            list.Add(MessagesBytes($"invalid utf-8 messages text {name}", Splice(MessagesBody(messages: """[{"role":"user","content":"x@@y"}]"""), bytes)) with { Status = 400, NothingUpstream = true });
            list.Add(MessagesBytes($"invalid utf-8 messages metadata.user_id {name}", Splice(MessagesBody("\"metadata\":{\"user_id\":\"@@\"}"), bytes)) with { Status = 400, NothingUpstream = true });
        }
        list.Add(Post("invalid utf-8 passthrough embeddings input 0xFF", "/v1/embeddings", Splice("""{"model":"text-embedding-3-small","input":"@@"}""", [0xFF]), Bearer));
    }

    /// <summary>JSON written with single quotes (<c>\'</c> for an escaped quote) and <c>@S</c> where <paramref name="s"/> goes.</summary>
    private static string Q(string template, string s) =>
        template.Replace("\\'", "\u0001", StringComparison.Ordinal).Replace('\'', '"').Replace("\u0001", "\\\"", StringComparison.Ordinal).Replace("@S", s, StringComparison.Ordinal);

    /// <summary>The UTF-8 of <paramref name="template"/> with its <c>@@</c> replaced by raw bytes.</summary>
    private static byte[] Splice(string template, byte[] bytes)
    {
        var at = template.IndexOf("@@", StringComparison.Ordinal);
        return [.. U(template[..at]), .. bytes, .. U(template[(at + 2)..])];
    }

    // ---- 5. malformed JSON -------------------------------------------------------------------------------------

    private static void Malformed(List<HostileCase> list)
    {
        var deep = new string('[', 10_000) + new string(']', 10_000);
        (string Name, string Body)[] chat =
        [
            ("empty body", ""),
            ("open brace", "{"),
            ("array", "[]"),
            ("null", "null"),
            ("string", "\"str\""),
            ("number", "42"),
            ("model is a number", """{"model":1}"""),
            ("messages is an object", """{"model":"gpt-4o","messages":{}}"""),
            ("trailing garbage", ChatBody() + "garbage"),
            ("two documents", ChatBody() + ChatBody()),
            ("duplicate model keys", """{"model":"gpt-4o","model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"""),
            ("duplicate messages keys", """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"messages":[{"role":"user","content":"bye"}]}"""),
            ("nested arrays depth 10000 in unknown field", ChatBody("\"x_deep\":" + deep)),
            ("nested arrays depth 10000 as body", deep),
            ("messages is a number", """{"model":"gpt-4o","messages":5}"""),
            ("messages empty", """{"model":"gpt-4o","messages":[]}"""),
            ("message is null", """{"model":"gpt-4o","messages":[null]}"""),
            ("content is a number", ChatBody(messages: """[{"role":"user","content":5}]""")),
            ("role unknown", ChatBody(messages: """[{"role":"wizard","content":"x"}]""")),
            ("role missing", ChatBody(messages: """[{"content":"x"}]""")),
            ("tool_calls not an array", ChatBody(messages: """[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":"x"}]""")),
            ("tools not an array", ChatBody("\"tools\":{}")),
            ("stream is a string", ChatBody("\"stream\":\"yes\"")),
            ("model empty", """{"model":"","messages":[{"role":"user","content":"hi"}]}"""),
            ("unterminated", """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]"""),
            ("trailing comma", """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],}"""),
            ("comment", """{"model":"gpt-4o",/* c */"messages":[{"role":"user","content":"hi"}]}"""),
            ("single quotes", """{'model':'gpt-4o','messages':[{'role':'user','content':'hi'}]}"""),
        ];
        foreach (var (name, body) in chat)
            list.Add(Chat($"malformed chat {name}", body) with { ClientError = true, NothingUpstream = true });

        (string Name, string Body)[] messages =
        [
            ("empty body", ""),
            ("open brace", "{"),
            ("array", "[]"),
            ("null", "null"),
            ("string", "\"str\""),
            ("model is a number", """{"model":1,"max_tokens":5}"""),
            ("messages is an object", """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":{}}"""),
            ("trailing garbage", MessagesBody() + "garbage"),
            ("duplicate model keys", """{"model":"claude-sonnet-4-5","model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"""),
            ("nested arrays depth 10000 in unknown field", MessagesBody("\"x_deep\":" + deep)),
            ("nested arrays depth 10000 as body", deep),
            ("messages is a number", """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":5}"""),
            ("content is a number", MessagesBody(messages: """[{"role":"user","content":5}]""")),
            ("content block is a number", MessagesBody(messages: """[{"role":"user","content":[5]}]""")),
            ("role unknown", MessagesBody(messages: """[{"role":"wizard","content":"x"}]""")),
            ("system is a number", MessagesBody("\"system\":5")),
            ("tool_use input is a string", MessagesBody(messages: """[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":"x"}]}]""")),
            ("tools not an array", MessagesBody("\"tools\":{}")),
            ("unterminated", """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]"""),
        ];
        foreach (var (name, body) in messages)
            list.Add(Messages($"malformed messages {name}", body) with { ClientError = true, NothingUpstream = true });
    }

    // ---- 6. headers --------------------------------------------------------------------------------------------

    private static void HeaderCases(List<HostileCase> list)
    {
        (string Name, (string, byte[]) Header)[] bad =
        [
            ("anthropic-beta utf-8 é", HB("anthropic-beta", 0xC3, 0xA9)),
            ("anthropic-beta latin-1 é", HB("anthropic-beta", 0xE9)),
            ("anthropic-beta list with utf-8 é", ("anthropic-beta", [.. U("prompt-caching-2024-07-31,"), 0xC3, 0xA9])),
            ("anthropic-version \\x01", ("anthropic-version", [.. U("2023-06-01"), 0x01])),
            ("anthropic-version \\x1b", ("anthropic-version", [0x1B, .. U("[31m2023-06-01")])),
            ("anthropic-version \\x7f", ("anthropic-version", [.. U("2023"), 0x7F, .. U("-06-01")])),
        ];
        foreach (var (name, header) in bad)
        {
            // The header replaces the corpus' own anthropic-version when it is one.
            IEnumerable<(string, byte[])> Auth() => header.Item1 == "anthropic-version" ? [H("x-api-key", Key)] : AnthropicKey;
            list.Add(Post($"header {name} on /v1/messages", "/v1/messages", U(MessagesBody()), Auth(), header) with { Status = 400, NothingUpstream = true });
            list.Add(Post($"header {name} on /v1/messages/count_tokens", "/v1/messages/count_tokens",
                U("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"""), Auth(), header) with
            { Status = 400, NothingUpstream = true });
        }
        list.Add(Messages("header anthropic-beta utf-8 é on /v1/messages->openai", MessagesBody(model: ChatModel), HB("anthropic-beta", 0xC3, 0xA9)) with { Status = 400, NothingUpstream = true });

        var big = new string('a', 10 * 1024);
        list.Add(Chat("header 10 KB x-trace-note on chat", ChatBody(), H("x-trace-note", big)) with { Success = true });
        list.Add(Messages("header 10 KB x-trace-note on messages", MessagesBody(), H("x-trace-note", big)) with { Success = true });
        list.Add(Post("header 10 KB x-trace-note on embeddings", "/v1/embeddings", U("""{"model":"text-embedding-3-small","input":"x"}"""), Bearer, H("x-trace-note", big)) with { Success = true });

        (string Name, byte[] Value)[] providers = [("nope", U("nope")), ("utf-8 é", [0xC3, 0xA9]), ("openai\\x01", [.. U("openai"), 0x01])];
        foreach (var (name, value) in providers)
        {
            var header = ("x-tokenrouter-provider", value);
            // Chat and messages route by model, not by this header: only the invariants hold there.
            list.Add(Chat($"x-tokenrouter-provider {name} on chat", ChatBody(), header));
            list.Add(Messages($"x-tokenrouter-provider {name} on messages", MessagesBody(), header));
            list.Add(Post($"x-tokenrouter-provider {name} on embeddings", "/v1/embeddings", U("""{"model":"text-embedding-3-small","input":"x"}"""), Bearer, header) with { Status = 400, NothingUpstream = true });
            list.Add(new HostileCase($"x-tokenrouter-provider {name} on GET /v1/files", "GET", "/v1/files") { Headers = [.. Bearer, header], Status = 400, NothingUpstream = true });
        }
    }

    // ---- 7. authentication and credential leaks ----------------------------------------------------------------

    private static void Auth(List<HostileCase> list)
    {
        (string Name, (string, byte[])[] Headers)[] openAIAuth =
        [
            ("no key", []),
            ("wrong bearer", [H("Authorization", "Bearer sk-tr-wrong-key")]),
            ("bearer with empty key", [H("Authorization", "Bearer ")]),
            ("bearer without a key", [H("Authorization", "Bearer")]),
            ("key in api-key only", [H("api-key", Key)]),
            ("key in cookie only", [H("Cookie", "api_key=" + Key)]),
            ("basic auth", [H("Authorization", "Basic " + Convert.ToBase64String(U("user:" + Key)))]),
        ];
        (string Name, string Method, string Target, string? Body)[] openAIEndpoints =
        [
            ("chat", "POST", "/v1/chat/completions", ChatBody()),
            ("embeddings", "POST", "/v1/embeddings", """{"model":"text-embedding-3-small","input":"x"}"""),
            ("files", "GET", "/v1/files", null),
            ("models", "GET", "/v1/models", null),
        ];
        foreach (var (endpoint, method, target, body) in openAIEndpoints)
        {
            foreach (var (name, headers) in openAIAuth)
            {
                list.Add(new HostileCase($"auth {name} on {method} {target}", method, target)
                {
                    Body = body is null ? null : U(body),
                    Headers = body is null ? headers : [.. headers, .. JsonType],
                    Status = 401,
                    NothingUpstream = true,
                });
            }
        }

        var version = H("anthropic-version", "2023-06-01");
        (string Name, (string, byte[])[] Headers)[] anthropicAuth =
        [
            ("no key", [version]),
            ("wrong x-api-key", [H("x-api-key", "sk-tr-wrong-key"), version]),
            ("empty x-api-key", [H("x-api-key", ""), version]),
            ("key in api-key only", [H("api-key", Key), version]),
        ];
        (string Target, string Body)[] anthropicEndpoints =
        [
            ("/v1/messages", MessagesBody()),
            ("/v1/messages/count_tokens", """{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"""),
        ];
        foreach (var (target, body) in anthropicEndpoints)
        {
            foreach (var (name, headers) in anthropicAuth)
                list.Add(new HostileCase($"auth {name} on POST {target}", "POST", target) { Body = U(body), Headers = [.. headers, .. JsonType], Status = 401, NothingUpstream = true });
        }

        // A valid key plus the client key smuggled in other headers: must never reach the provider (invariant 3).
        (string Name, (string, byte[]) Header)[] smuggled =
        [
            ("api-key", H("api-key", Key)),
            ("cookie", H("Cookie", "session=" + Key + "; theme=dark")),
            ("x-custom-auth", H("X-Custom-Auth", Key)),
            ("proxy-authorization", H("Proxy-Authorization", "Bearer " + Key)),
            ("x-forwarded-authorization", H("X-Forwarded-Authorization", "Bearer " + Key)),
        ];
        foreach (var (name, header) in smuggled)
        {
            list.Add(Post($"leak {name} on embeddings", "/v1/embeddings", U("""{"model":"text-embedding-3-small","input":"x"}"""), Bearer, header) with { Success = true });
            list.Add(new HostileCase($"leak {name} on GET /v1/files", "GET", "/v1/files") { Headers = [.. Bearer, header], Success = true });
            list.Add(Post($"leak {name} on count_tokens", "/v1/messages/count_tokens", U("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"""), AnthropicKey, header) with { Success = true });
            list.Add(Chat($"leak {name} on chat", ChatBody(), header) with { Success = true });
            list.Add(Messages($"leak {name} on messages", MessagesBody(), header) with { Success = true });
        }
        list.Add(Post("leak x-forwarded-for on embeddings", "/v1/embeddings", U("""{"model":"text-embedding-3-small","input":"x"}"""), Bearer, H("X-Forwarded-For", "10.1.2.3")) with
        {
            Success = true,
            ForbiddenUpstreamHeaders = ["X-Forwarded-For"],
        });
        list.Add(Post("leak x-forwarded-for on count_tokens", "/v1/messages/count_tokens", U("""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"""), AnthropicKey, H("X-Forwarded-For", "10.1.2.3")) with
        {
            Success = true,
            ForbiddenUpstreamHeaders = ["X-Forwarded-For"],
        });
    }

    // ---- 8. passthrough ----------------------------------------------------------------------------------------

    private static void Passthrough(List<HostileCase> list)
    {
        list.Add(Post("passthrough unknown model embeddings", "/v1/embeddings", U("""{"model":"llama-9000","input":"x"}"""), Bearer) with { Status = 404, NothingUpstream = true });
        list.Add(Post("passthrough unknown model moderations", "/v1/moderations", U("""{"model":"llama-9000","input":"x"}"""), Bearer) with { Status = 404, NothingUpstream = true });
        list.Add(Post("passthrough unknown model count_tokens", "/v1/messages/count_tokens", U("""{"model":"llama-9000","messages":[{"role":"user","content":"hi"}]}"""), AnthropicKey) with { Status = 404, NothingUpstream = true });

        // Forwarded unchanged by design: only the invariants.
        var embeddings = U("""{"model":"text-embedding-3-small","input":"x"}""");
        foreach (var type in new[] { "text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=zzz", "application/json; charset=utf-16" })
            list.Add(new HostileCase($"passthrough embeddings content-type {type}", "POST", "/v1/embeddings") { Body = embeddings, Headers = [.. Bearer, H("Content-Type", type)] });
        list.Add(new HostileCase("passthrough embeddings without content-type", "POST", "/v1/embeddings") { Body = embeddings, Headers = Bearer });
        foreach (var (name, body) in new[] { ("array", "[]"), ("null", "null"), ("string", "\"x\""), ("number", "1"), ("open brace", "{"), ("model is a number", """{"model":5,"input":"x"}"""), ("model is an object", """{"model":{"a":1},"input":"x"}""") })
            list.Add(Post($"passthrough embeddings body {name}", "/v1/embeddings", U(body), Bearer));
        list.Add(Post("passthrough embeddings duplicate model keys", "/v1/embeddings", U("""{"model":"text-embedding-3-small","model":"claude-sonnet-4-5","input":"x"}"""), Bearer));
        list.Add(Post("passthrough count_tokens duplicate model keys", "/v1/messages/count_tokens", U("""{"model":"claude-sonnet-4-5","model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"""), AnthropicKey));
        list.Add(Post("passthrough moderations body array", "/v1/moderations", U("[1,2,3]"), Bearer));

        // Over the limit: 200 KB against a 64 KB limit, declared and chunked.
        var filler = new string('a', 200 * 1024);
        (string Name, string Target, (string, byte[])[] Auth, string Type, byte[] Body)[] big =
        [
            ("embeddings", "/v1/embeddings", Bearer, "application/json", U($$"""{"model":"text-embedding-3-small","input":"{{filler}}"}""")),
            ("moderations", "/v1/moderations", Bearer, "application/json", U($$"""{"model":"omni-moderation-latest","input":"{{filler}}"}""")),
            ("count_tokens", "/v1/messages/count_tokens", AnthropicKey, "application/json", U($$"""{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"{{filler}}"}]}""")),
            ("files octet-stream", "/v1/files", Bearer, "application/octet-stream", U(filler)),
            ("files json without model", "/v1/files", Bearer, "application/json", U($$"""{"purpose":"batch","data":"{{filler}}"}""")),
            ("chat", "/v1/chat/completions", Bearer, "application/json", U(ChatBody(messages: $$"""[{"role":"user","content":"{{filler}}"}]"""))),
            ("messages", "/v1/messages", AnthropicKey, "application/json", U(MessagesBody(messages: $$"""[{"role":"user","content":"{{filler}}"}]"""))),
        ];
        foreach (var (name, target, auth, type, body) in big)
        {
            list.Add(new HostileCase($"too large 200 KB content-length {name}", "POST", target)
            {
                Body = body,
                Headers = [.. auth, H("Content-Type", type)],
                Status = 413,
                NothingUpstream = true,
            });
            list.Add(new HostileCase($"too large 200 KB chunked {name}", "POST", target)
            {
                Body = body,
                Headers = [.. auth, H("Content-Type", type)],
                Chunked = true,
                Status = 413,
                MaxUpstreamBodyBytes = BodyLimit,
            });
        }

        // Issue #16: a 10 MB chunked upload sent 7.4 MB upstream before its 413. 4 MB, chunked, streamed kinds of body.
        var huge = new byte[4 * 1024 * 1024];
        Array.Fill(huge, (byte)'b');
        list.Add(new HostileCase("too large 4 MB chunked files octet-stream", "POST", "/v1/files")
        {
            Body = huge,
            Headers = [.. Bearer, H("Content-Type", "application/octet-stream")],
            Chunked = true,
            Status = 413,
            MaxUpstreamBodyBytes = BodyLimit,
        });
        list.Add(new HostileCase("too large 4 MB chunked audio multipart", "POST", "/v1/audio/transcriptions")
        {
            Body = huge,
            Headers = [.. Bearer, H("Content-Type", "multipart/form-data; boundary=zzz")],
            Chunked = true,
            Status = 413,
            MaxUpstreamBodyBytes = BodyLimit,
        });
        list.Add(new HostileCase("too large 4 MB content-length files octet-stream", "POST", "/v1/files")
        {
            Body = huge,
            Headers = [.. Bearer, H("Content-Type", "application/octet-stream")],
            Status = 413,
            NothingUpstream = true,
        });
    }

    // ---- 9. unknown models and paths ---------------------------------------------------------------------------

    private static void UnknownModelsAndPaths(List<HostileCase> list)
    {
        list.Add(Chat("unknown model chat llama-9000", ChatBody(model: "llama-9000")) with { Status = 404, NothingUpstream = true });
        list.Add(Chat("unknown model chat with NUL", ChatBody(model: "gpt\\u0000x")));
        list.Add(Messages("unknown model messages llama-9000", MessagesBody(model: "llama-9000")) with { Status = 404, NothingUpstream = true });
        list.Add(Messages("unknown model messages empty", MessagesBody(model: "")) with { ClientError = true, NothingUpstream = true });
        // A model name is only a body field: whatever it looks like, the path must not move.
        list.Add(Chat("model name openai/../../stats on chat", ChatBody(model: "openai/../../stats")));
        list.Add(Post("model name openai/../../stats on embeddings", "/v1/embeddings", U("""{"model":"openai/../../stats","input":"x"}"""), Bearer));

        list.Add(new HostileCase("unknown path GET /v1/nonexistent", "GET", "/v1/nonexistent") { Headers = Bearer, UpstreamPath = "/openai/v1/nonexistent" });
        list.Add(new HostileCase("unknown path GET /v1/foo/bar?x=1", "GET", "/v1/foo/bar?x=1") { Headers = Bearer, UpstreamPath = "/openai/v1/foo/bar" });
        list.Add(new HostileCase("unknown path GET /v1/whatever [x-api-key]", "GET", "/v1/whatever") { Headers = AnthropicKey, UpstreamPath = "/anthropic/v1/whatever" });
        list.Add(new HostileCase("unknown path GET /v1/", "GET", "/v1/") { Headers = Bearer });
        list.Add(new HostileCase("unknown path GET /v1", "GET", "/v1") { Headers = Bearer });
        list.Add(new HostileCase("unknown path POST /v2/chat/completions", "POST", "/v2/chat/completions") { Body = U(ChatBody()), Headers = [.. Bearer, .. JsonType], Status = 404, NothingUpstream = true });
        list.Add(new HostileCase("unknown path GET /v1x/models", "GET", "/v1x/models") { Headers = Bearer, Status = 404, NothingUpstream = true });
        list.Add(new HostileCase("unknown path GET /", "GET", "/") { Headers = Bearer });
        list.Add(new HostileCase("unknown path POST /v2/messages [x-api-key]", "POST", "/v2/messages") { Body = U(MessagesBody()), Headers = [.. AnthropicKey, .. JsonType], Status = 404, NothingUpstream = true });
    }

    // ---- 10. the simulator's own endpoints ---------------------------------------------------------------------

    private static void Simulator(List<HostileCase> list)
    {
        list.Add(new HostileCase("sim GET /sim/stats without key", "GET", "/sim/stats") { Status = 401, NothingUpstream = true });
        list.Add(new HostileCase("sim POST /sim/reset without key", "POST", "/sim/reset") { Body = [], Status = 401, NothingUpstream = true });
        list.Add(new HostileCase("sim POST /sim/reset with wrong key", "POST", "/sim/reset") { Body = [], Headers = [H("Authorization", "Bearer sk-tr-wrong-key")], Status = 401, NothingUpstream = true });
        list.Add(new HostileCase("sim POST /sim/openai/v1/chat/completions without key", "POST", "/sim/openai/v1/chat/completions")
        {
            Body = U(ChatBody(model: "sim-openai")),
            Headers = JsonType,
            Status = 401,
            NothingUpstream = true,
        });
        list.Add(new HostileCase("sim POST /sim/anthropic/v1/messages without key", "POST", "/sim/anthropic/v1/messages")
        {
            Body = U(MessagesBody(model: "sim-anthropic")),
            Headers = [H("anthropic-version", "2023-06-01"), .. JsonType],
            Status = 401,
            NothingUpstream = true,
        });
    }
}
