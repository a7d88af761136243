using System.Buffers;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// What ties a request to a provider cache, computed in one walk over the envelope: the client's session key (a coding
/// agent's session header or its own <c>prompt_cache_key</c>), the conversation's root (scope + system + tools + first
/// user turn: the same for every turn, so a new conversation lands on one deployment), and the cumulative hashes of the
/// canonical prefix at every message boundary that is long enough for a provider to cache. Every hash includes the scope
/// and the provider: pins never cross tenants or providers. Each message is hashed once; a boundary's hash chains the
/// previous one with it. The prefix list is pooled: dispose the keys.
/// </summary>
internal struct AffinityKeys : IDisposable
{
    /// <summary>Session headers coding agents send, strongest first: Claude Code (v2.1.86+), Codex (<c>session_id</c>, its
    /// newer <c>session-id</c> and <c>conversation_id</c>), OpenCode, and the generic affinity headers other proxies honour.</summary>
    internal static readonly string[] SessionHeaders =
    [
        "x-claude-code-session-id", "session_id", "session-id", "conversation_id", "x-opencode-session", "x-session-affinity",
        "x-session-id",
    ];

    /// <summary>The <c>prompt_cache_key</c> the gateway derives itself (CacheInjector: <c>tr-</c> + system/tools hash) is
    /// shared by every conversation of a tenant with the same tools: pinning it would put them all on one deployment.</summary>
    private const string GatewayPromptCacheKeyPrefix = "tr-";

    private UInt128[]? _prefixes;

    public UInt128 Root { get; private set; }
    public UInt128? Session { get; private set; }
    /// <summary>Number of cacheable boundaries in <see cref="Prefixes"/>.</summary>
    public int PrefixCount { get; private set; }
    /// <summary>Boundary hashes long enough to be cached, shortest first (the last is the whole request).</summary>
    public readonly ReadOnlySpan<UInt128> Prefixes => _prefixes.AsSpan(0, PrefixCount);
    /// <summary>The request carries an Anthropic 1-hour breakpoint: its prefix lives an hour in the provider cache.</summary>
    public bool OneHourCache { get; private set; }

    public readonly UInt128? Longest => PrefixCount > 0 ? _prefixes![PrefixCount - 1] : null;

    public static AffinityKeys Compute(RoutingRequest request, int minCacheableBytes)
    {
        var keys = new AffinityKeys();
        var envelope = request.Envelope;
        keys.Session = SessionKey(request);

        var hash = RentHasher();
        AppendString(hash, request.Scope);
        AppendString(hash, request.Provider);
        long bytes = 0;
        var oneHour = false;
        if (envelope.System is { } system)
        {
            foreach (var part in system)
            {
                AppendText(hash, part.TextValue, ref bytes);
                oneHour |= part.CacheControl?.IsOneHour == true;
            }
        }
        foreach (var tool in envelope.Tools)
        {
            AppendString(hash, tool.Name, ref bytes);
            AppendText(hash, tool.DescriptionValue, ref bytes);
            ReadOnlySpan<byte> schema = tool.CanonicalParameters is { } canonical ? canonical
                : tool.Parameters.ValueKind != System.Text.Json.JsonValueKind.Undefined ? JsonMarshal.GetRawUtf8Value(tool.Parameters)
                : tool.IsRaw ? JsonMarshal.GetRawUtf8Value(tool.Raw) : default;
            hash.Append(schema);
            bytes += schema.Length;
            oneHour |= tool.CacheControl?.IsOneHour == true;
        }
        var head = ReturnHasher(hash);

        // The root leaves the model out (a conversation that switches model stays put); prefixes include it, because a
        // provider caches per model.
        var root = head;
        var rootDone = false;
        var prefix = Combine(head, XxHash3.HashToUInt64(MemoryMarshal.AsBytes(envelope.Model.AsSpan())));
        var messages = envelope.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            var messageHash = HashMessage(m, ref bytes, ref oneHour);
            prefix = Combine(prefix, messageHash);
            if (!rootDone)
            {
                root = Combine(root, messageHash);
                rootDone = m.Role == MessageRole.User;
            }
            // Bytes / 4 estimates tokens; a prefix under the provider's minimum is never cached, so it proves nothing.
            if (bytes >= minCacheableBytes)
            {
                keys._prefixes ??= ArrayPool<UInt128>.Shared.Rent(messages.Count - i);
                keys._prefixes[keys.PrefixCount++] = prefix;
            }
        }
        keys.Root = root;
        keys.OneHourCache = oneHour;
        return keys;
    }

    public readonly void Dispose()
    {
        if (_prefixes is not null) ArrayPool<UInt128>.Shared.Return(_prefixes);
    }

    private static UInt128? SessionKey(RoutingRequest request)
    {
        var headers = request.Headers;
        foreach (var name in SessionHeaders)
        {
            if (headers.TryGetValue(name, out var values) && values.Count > 0 && values[0] is { Length: > 0 } value)
                return KeyOf(request, 's', value);
        }
        if (request.Envelope.PromptCacheKey is { Length: > 0 } cacheKey && !cacheKey.StartsWith(GatewayPromptCacheKeyPrefix, StringComparison.Ordinal))
            return KeyOf(request, 'k', cacheKey);
        return null;
    }

    private static UInt128 KeyOf(RoutingRequest request, char kind, string value)
    {
        var hash = RentHasher();
        hash.Append(MemoryMarshal.AsBytes(new ReadOnlySpan<char>(in kind)));
        AppendString(hash, request.Scope);
        AppendString(hash, request.Provider);
        AppendString(hash, value);
        return ReturnHasher(hash);
    }

    private static ulong HashMessage(Message m, ref long bytes, ref bool oneHour)
    {
        var hash = RentHasher();
        var role = (byte)m.Role;
        hash.Append(new ReadOnlySpan<byte>(in role));
        AppendString(hash, m.Name, ref bytes);
        AppendString(hash, m.ToolCallId, ref bytes);
        AppendText(hash, m.TextValue, ref bytes);
        if (m.Parts is { } parts)
        {
            foreach (var p in parts) AppendPart(hash, p, ref bytes, ref oneHour);
        }
        if (m.ToolCalls is { } calls)
        {
            foreach (var call in calls)
            {
                AppendString(hash, call.Id, ref bytes);
                AppendString(hash, call.Name, ref bytes);
                AppendString(hash, call.Arguments, ref bytes);
            }
        }
        oneHour |= m.CacheBreakpoint?.IsOneHour == true;
        return (ulong)ReturnHasher(hash);
    }

    private static void AppendPart(XxHash128 hash, ContentPart p, ref long bytes, ref bool oneHour)
    {
        var kind = (byte)p.Kind;
        hash.Append(new ReadOnlySpan<byte>(in kind));
        AppendText(hash, p.TextValue, ref bytes);
        AppendString(hash, p.Id, ref bytes);
        AppendString(hash, p.Name, ref bytes);
        AppendString(hash, p.Arguments, ref bytes);
        AppendString(hash, p.Url, ref bytes);
        AppendString(hash, p.Data, ref bytes);
        if (p.Content is { } inner)
        {
            foreach (var q in inner) AppendPart(hash, q, ref bytes, ref oneHour);
        }
        if (p.Kind == PartKind.Other && p.Raw.ValueKind != System.Text.Json.JsonValueKind.Undefined)
        {
            var raw = JsonMarshal.GetRawUtf8Value(p.Raw);
            hash.Append(raw);
            bytes += raw.Length;
        }
        oneHour |= p.CacheControl?.IsOneHour == true;
    }

    private static UInt128 Combine(UInt128 previous, ulong next)
    {
        Span<byte> buffer = stackalloc byte[24];
        MemoryMarshal.Write(buffer, in previous);
        MemoryMarshal.Write(buffer[16..], in next);
        return XxHash128.HashToUInt128(buffer);
    }

    // One hasher per thread, reset for each use (an XxHash128 carries ~600 bytes of state), as the pipeline's Hasher does.
    [ThreadStatic] private static XxHash128? t_hasher;

    private static XxHash128 RentHasher()
    {
        var hash = t_hasher ?? new XxHash128();
        t_hasher = null;
        hash.Reset();
        return hash;
    }

    private static UInt128 ReturnHasher(XxHash128 hash)
    {
        var value = hash.GetCurrentHashAsUInt128();
        t_hasher = hash;
        return value;
    }

    private static void AppendText(XxHash128 hash, JsonText text, ref long bytes)
    {
        text.AppendTo(hash);
        hash.Append([0xFF]);
        bytes += text.ApproximateUtf8Length;
    }

    private static void AppendString(XxHash128 hash, string? s, ref long bytes)
    {
        AppendString(hash, s);
        if (s is not null) bytes += s.Length;
    }

    private static void AppendString(XxHash128 hash, string? s)
    {
        if (s is not null) hash.Append(MemoryMarshal.AsBytes(s.AsSpan()));
        hash.Append([0xFF]);
    }
}
