using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Pipeline stage: the target vendor's cache directives.
/// Anthropic caches only up to <c>cache_control</c> breakpoints (at most 4): the client's own are kept, and the
/// free slots go, in this order, after the tools, after the system prompt, on the last message (the next turn
/// reads it) and on the last history message (this turn reads what the previous turn wrote, even past the
/// 20-block look-back). A longer TTL never follows a shorter one.
/// OpenAI routes by <c>prompt_cache_key</c>: when the client sent none it gets one derived from the key's scope and
/// the prefix hash. DeepSeek's cache is automatic: a stable order is all it needs.
/// </summary>
public static class CacheInjector
{
    public const int MaxBreakpoints = 4;
    public const int MaxPromptCacheKeyLength = 64;

    public static void Inject(Envelope envelope, ProviderKind target, string scope, string ttlPolicy)
    {
        switch (target)
        {
            case ProviderKind.Anthropic:
                InjectAnthropic(envelope, ttlPolicy);
                break;
            case ProviderKind.OpenAI when envelope.PromptCacheKey is null && envelope.PrefixHash is { } prefix:
                envelope.PromptCacheKey = PromptCacheKey(scope, prefix);
                break;
        }
    }

    // Each scope resends its prefix on every turn: its key is made once (bounded like the prefix hexes, Hasher).
    private static readonly TextCache<(string Scope, string PrefixHash)> PromptCacheKeys = new(Hasher.MaxKeptPrefixes);

    /// <summary><c>tr-</c> + 32 hex of the prefix hash + the scope's hash: the same prefix in the same scope routes to the same cache.</summary>
    public static string PromptCacheKey(string scope, string prefixHash) =>
        PromptCacheKeys.Get((scope, prefixHash), 0, static (k, _) => MakePromptCacheKey(k.Scope, k.PrefixHash));

    private static string MakePromptCacheKey(string scope, string prefixHash)
    {
        var scopeHash = System.IO.Hashing.XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(scope.AsSpan()));
        var key = $"tr-{prefixHash[..Math.Min(32, prefixHash.Length)]}-{scopeHash:x16}";
        return key.Length <= MaxPromptCacheKeyLength ? key : key[..MaxPromptCacheKeyLength];
    }

    private static void InjectAnthropic(Envelope envelope, string ttlPolicy)
    {
        var existing = CountBreakpoints(envelope);
        if (existing > MaxBreakpoints) TrimToMax(envelope, existing - MaxBreakpoints);
        var free = MaxBreakpoints - Math.Min(existing, MaxBreakpoints);

        var prefixTtl = ttlPolicy is "1h" or "mixed" ? CacheControl.OneHour : CacheControl.FiveMinutes;
        var turnTtl = ttlPolicy == "1h" ? CacheControl.OneHour : CacheControl.FiveMinutes;
        // A client's own 1-hour breakpoint wins over the policy: a mark added before it takes 1 hour too, or
        // EnforceTtlOrder would have to shorten the client's.
        var clientOneHour = LastOneHourPosition(envelope);
        CacheControl TtlAt(int position, CacheControl policy) => position < clientOneHour ? CacheControl.OneHour : policy;

        // After the tools.
        if (free > 0 && LastCacheableTool(envelope) is { } lastTool && !HasToolBreakpoint(envelope))
        {
            lastTool.CacheControl = TtlAt(ToolsPosition, prefixTtl);
            free--;
        }
        // After the system prompt.
        if (free > 0)
        {
            if (envelope.System is { Count: > 0 } system)
            {
                if (!HasAny(system))
                {
                    system[^1].CacheControl = TtlAt(SystemPosition, prefixTtl);
                    free--;
                }
            }
            else
            {
                var n = Chunker.LeadingSystemCount(envelope);
                if (n > 0 && !MessageHasBreakpoint(envelope.Messages[n - 1]))
                {
                    envelope.Messages[n - 1].CacheBreakpoint = TtlAt(MessagePosition(n - 1), prefixTtl);
                    free--;
                }
            }
        }
        // On the last message, then on the end of the history.
        var messages = envelope.Messages;
        if (free > 0 && messages.Count > 0 && !MessageHasBreakpoint(messages[^1]) && IsConversationTurn(messages[^1]))
        {
            messages[^1].CacheBreakpoint = TtlAt(MessagePosition(messages.Count - 1), turnTtl);
            free--;
        }
        var historyEnd = envelope.QueryStart - 1;
        if (free > 0 && historyEnd >= 0 && historyEnd < messages.Count - 1 && !MessageHasBreakpoint(messages[historyEnd])
            && IsConversationTurn(messages[historyEnd]))
        {
            messages[historyEnd].CacheBreakpoint = TtlAt(MessagePosition(historyEnd), turnTtl);
        }
        EnforceTtlOrder(envelope);
    }

    private static bool IsConversationTurn(Message m) => m.Role is not (MessageRole.System or MessageRole.Developer);

    // Prompt-order positions: tools, then the top-level system, then each message.
    private const int ToolsPosition = 0;
    private const int SystemPosition = 1;
    private static int MessagePosition(int index) => 2 + index;

    /// <summary>Prompt-order position of the client's last 1-hour breakpoint, or -1.</summary>
    private static int LastOneHourPosition(Envelope envelope)
    {
        for (var i = envelope.Messages.Count - 1; i >= 0; i--)
        {
            var m = envelope.Messages[i];
            if (m.CacheBreakpoint?.IsOneHour == true) return MessagePosition(i);
            if (m.Parts is not { } parts) continue;
            foreach (var p in parts)
            {
                if (p.CacheControl?.IsOneHour == true) return MessagePosition(i);
                if (p.Content is { } inner) foreach (var q in inner) if (q.CacheControl?.IsOneHour == true) return MessagePosition(i);
            }
        }
        if (envelope.System is { } system) foreach (var p in system) if (p.CacheControl?.IsOneHour == true) return SystemPosition;
        foreach (var t in envelope.Tools) if (t.CacheControl?.IsOneHour == true) return ToolsPosition;
        return -1;
    }

    /// <summary>The last tool the target receives: an OpenAI client's non-function tools are not sent to Anthropic.</summary>
    private static ToolDefinition? LastCacheableTool(Envelope envelope)
    {
        for (var i = envelope.Tools.Count - 1; i >= 0; i--)
        {
            var t = envelope.Tools[i];
            if (!t.IsRaw || envelope.ClientFormat == ApiFormat.Anthropic) return t;
        }
        return null;
    }

    private static bool HasToolBreakpoint(Envelope envelope)
    {
        foreach (var t in envelope.Tools)
        {
            if (t.CacheControl is not null) return true;
        }
        return false;
    }

    private static bool HasAny(List<ContentPart> parts)
    {
        foreach (var p in parts)
        {
            if (p.CacheControl is not null) return true;
        }
        return false;
    }

    private static bool MessageHasBreakpoint(Message m) => m.CacheBreakpoint is not null || (m.Parts is { } parts && HasAny(parts));

    public static int CountBreakpoints(Envelope envelope)
    {
        var n = 0;
        foreach (var t in envelope.Tools) if (t.CacheControl is not null) n++;
        if (envelope.System is { } system) foreach (var p in system) if (p.CacheControl is not null) n++;
        foreach (var m in envelope.Messages)
        {
            if (m.CacheBreakpoint is not null) n++;
            if (m.Parts is { } parts)
            {
                foreach (var p in parts)
                {
                    if (p.CacheControl is not null) n++;
                    if (p.Content is { } inner) foreach (var q in inner) if (q.CacheControl is not null) n++;
                }
            }
        }
        return n;
    }

    /// <summary>A client that sent more than 4 breakpoints would get a 400 upstream: drop its earliest extras
    /// (later breakpoints cover longer prefixes, so they are the valuable ones).</summary>
    private static void TrimToMax(Envelope envelope, int excess)
    {
        foreach (var t in envelope.Tools)
        {
            if (excess == 0) return;
            if (t.CacheControl is not null) { t.CacheControl = null; excess--; }
        }
        if (envelope.System is { } system)
        {
            foreach (var p in system)
            {
                if (excess == 0) return;
                if (p.CacheControl is not null) { p.CacheControl = null; excess--; }
            }
        }
        foreach (var m in envelope.Messages)
        {
            if (excess == 0) return;
            if (m.CacheBreakpoint is not null) { m.CacheBreakpoint = null; excess--; }
            if (m.Parts is not { } parts) continue;
            foreach (var p in parts)
            {
                if (excess == 0) return;
                if (p.CacheControl is not null) { p.CacheControl = null; excess--; }
                if (p.Content is not { } inner) continue;
                foreach (var q in inner)
                {
                    if (excess == 0) return;
                    if (q.CacheControl is not null) { q.CacheControl = null; excess--; }
                }
            }
        }
    }

    /// <summary>Anthropic rejects a 1-hour breakpoint after a 5-minute one: downgrade any such later 1-hour mark.</summary>
    private static void EnforceTtlOrder(Envelope envelope)
    {
        var seenShort = false;
        foreach (var t in envelope.Tools) t.CacheControl = Fix(t.CacheControl, ref seenShort);
        if (envelope.System is { } system) foreach (var p in system) p.CacheControl = Fix(p.CacheControl, ref seenShort);
        foreach (var m in envelope.Messages)
        {
            if (m.Parts is { } parts)
            {
                foreach (var p in parts)
                {
                    if (p.Content is { } inner) foreach (var q in inner) q.CacheControl = Fix(q.CacheControl, ref seenShort);
                    p.CacheControl = Fix(p.CacheControl, ref seenShort);
                }
            }
            m.CacheBreakpoint = Fix(m.CacheBreakpoint, ref seenShort);
        }

        static CacheControl? Fix(CacheControl? cc, ref bool seenShort)
        {
            if (cc is null) return null;
            if (!cc.IsOneHour)
            {
                seenShort = true;
                return cc;
            }
            return seenShort ? CacheControl.FiveMinutes : cc;
        }
    }
}
