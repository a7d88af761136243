using System.IO.Hashing;
using System.Runtime.InteropServices;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Pipeline stage: System → Tools → History → Query. Providers render tools before messages, so the only thing
/// to arrange is the tool list: one canonical order that is stable within a conversation. A conversation seen for
/// the first time gets name order; one already seen keeps the order it used, with new tools appended (sorting a
/// grown list would move tools and invalidate the cached tail). Messages are never reordered.
/// </summary>
public sealed class Arranger(ToolOrderMemory memory)
{
    public void Arrange(Envelope envelope, string scope)
    {
        var tools = envelope.Tools;
        // A single tool is remembered too: when the conversation later adds one, the first stays first.
        if (tools.Count == 0) return;

        var root = ConversationRoot(envelope, scope);
        if (memory.TryGet(root, out var known))
        {
            var added = SortByKnownOrder(tools, known);
            if (added) memory.Set(root, Names(tools, known));
            else memory.Touch(root, known);
            return;
        }

        tools.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        memory.Set(root, Names(tools, []));
    }

    /// <summary>
    /// The known tools in their remembered order, then any new ones by name; true when there were new ones. Each tool's
    /// rank is looked up once and the list insertion-sorted by it: stable, and without the closure and delegate a
    /// comparison lambda over <paramref name="known"/> cost per request (a conversation's tools mostly arrive in order).
    /// </summary>
    private static bool SortByKnownOrder(List<ToolDefinition> tools, string[] known)
    {
        var span = CollectionsMarshal.AsSpan(tools);
        Span<int> ranks = span.Length <= 256 ? stackalloc int[span.Length] : new int[span.Length];
        var added = false;
        for (var i = 0; i < span.Length; i++)
        {
            var rank = Array.IndexOf(known, span[i].Name);
            added |= rank < 0;
            ranks[i] = rank < 0 ? int.MaxValue : rank;
        }
        for (var i = 1; i < span.Length; i++)
        {
            var tool = span[i];
            var rank = ranks[i];
            var j = i - 1;
            while (j >= 0 && Before(rank, tool, ranks[j], span[j]))
            {
                span[j + 1] = span[j];
                ranks[j + 1] = ranks[j];
                j--;
            }
            span[j + 1] = tool;
            ranks[j + 1] = rank;
        }
        return added;

        static bool Before(int rankA, ToolDefinition a, int rankB, ToolDefinition b) =>
            rankA != rankB ? rankA < rankB : string.CompareOrdinal(a.Name, b.Name) < 0;
    }

    /// <summary>Remembered names: everything the conversation has used so far (a tool dropped for a turn keeps its slot).</summary>
    private static string[] Names(List<ToolDefinition> tools, string[] known)
    {
        var names = new List<string>(known.Length + tools.Count);
        names.AddRange(known);
        foreach (var t in tools)
        {
            if (Array.IndexOf(known, t.Name) < 0) names.Add(t.Name);
        }
        return [.. names];
    }

    /// <summary>The conversation's identity: tenant + system + first user turn.</summary>
    public static UInt128 ConversationRoot(Envelope envelope, string scope)
    {
        var hash = Hasher.RentHasher();
        Append(hash, scope);
        Append(hash, envelope.Model);
        if (envelope.System is { } system)
        {
            foreach (var part in system) Append(hash, part.TextValue);
        }
        foreach (var m in envelope.Messages)
        {
            if (m.Role is MessageRole.System or MessageRole.Developer)
            {
                AppendContent(hash, m);
                continue;
            }
            if (m.Role == MessageRole.User)
            {
                AppendContent(hash, m);
                break;
            }
        }
        return Hasher.ReturnHasher(hash);
    }

    private static void AppendContent(XxHash128 hash, Message m)
    {
        Append(hash, m.TextValue);
        if (m.Parts is { } parts)
        {
            foreach (var p in parts) Append(hash, p.TextValue);
        }
    }

    private static void Append(XxHash128 hash, JsonText text)
    {
        if (text.IsNull) return;
        text.AppendTo(hash);
        hash.Append([0]);
    }

    private static void Append(XxHash128 hash, string? s)
    {
        if (s is null) return;
        hash.Append(MemoryMarshal.AsBytes(s.AsSpan()));
        hash.Append([0]);
    }
}
