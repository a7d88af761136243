using TokenRouter.Gateway.Formats;
namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Pipeline stage: splits the request into blocks — System (leading system/developer messages or top-level
/// system), Tools, History, and Query (the last user turn and everything after it). It only marks boundaries;
/// it never splits or moves a message.
/// </summary>
public static class Chunker
{
    public static void Chunk(Envelope envelope)
    {
        var messages = envelope.Messages;
        var query = messages.Count;
        for (var i = messages.Count - 1; i >= 0; i--)
        {
            if (messages[i].Role == MessageRole.User && !IsOnlyToolResults(messages[i]))
            {
                query = i;
                break;
            }
        }
        // No plain user turn (e.g. only system + tool traffic): the last message is the query.
        envelope.QueryStart = query == messages.Count ? Math.Max(0, messages.Count - 1) : query;
    }

    /// <summary>Number of leading system/developer messages (the System block when it lives in messages).</summary>
    public static int LeadingSystemCount(Envelope envelope)
    {
        var n = 0;
        while (n < envelope.Messages.Count && envelope.Messages[n].Role is MessageRole.System or MessageRole.Developer) n++;
        return n;
    }

    private static bool IsOnlyToolResults(Message m)
    {
        if (m.Parts is not { Count: > 0 } parts || m.HasText) return false;
        foreach (var p in parts)
        {
            if (p.Kind != PartKind.ToolResult) return false;
        }
        return true;
    }
}
