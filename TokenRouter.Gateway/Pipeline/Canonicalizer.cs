using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Pipeline stage: puts tool schemas and tool-call arguments into one canonical byte form, so the same logical
/// request from any client yields the same bytes. Message text and descriptions are never touched.
/// </summary>
public sealed class Canonicalizer
{
    // Agents resend the same tool list every turn: canonical schema bytes are cached by a hash of the raw bytes.
    private readonly ConcurrentDictionary<UInt128, byte[]> _schemaCache = new();
    private const int MaxCachedSchemas = 4096;

    public void Canonicalize(Envelope envelope)
    {
        foreach (var tool in envelope.Tools)
        {
            if (!tool.IsRaw && tool.Parameters.ValueKind == JsonValueKind.Object)
                tool.CanonicalParameters = CanonicalSchema(tool.Parameters);
        }

        foreach (var message in envelope.Messages)
        {
            if (message.ToolCalls is { } calls)
            {
                foreach (var call in calls) call.Arguments = CanonicalJson.CanonicalizeText(call.Arguments);
            }
            if (message.Parts is { } parts)
            {
                foreach (var part in parts)
                {
                    if (part.Kind == PartKind.ToolUse && part.Arguments is not null)
                        part.Arguments = CanonicalJson.CanonicalizeText(part.Arguments);
                }
            }
        }
    }

    private byte[] CanonicalSchema(JsonElement schema)
    {
        var raw = JsonMarshal.GetRawUtf8Value(schema);
        var key = XxHash128.HashToUInt128(raw);
        if (_schemaCache.TryGetValue(key, out var cached)) return cached;
        var bytes = CanonicalJson.ToBytes(schema);
        if (_schemaCache.Count >= MaxCachedSchemas) _schemaCache.Clear();
        _schemaCache[key] = bytes;
        return bytes;
    }
}
