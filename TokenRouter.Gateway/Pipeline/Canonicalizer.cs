using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text.Json;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

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
        for (var i = 0; i < envelope.Tools.Count; i++)
        {
            var tool = envelope.Tools[i];
            if (tool.IsRaw || tool.Parameters.ValueKind != JsonValueKind.Object) continue;
            try
            {
                tool.CanonicalParameters = CanonicalSchema(tool.Parameters);
            }
            catch (InvalidOperationException)
            {
                // System.Text.Json cannot decode a string in it (an unpaired surrogate escape such as "\ud83d").
                throw ApiError.InvalidRequest("The tool's schema holds a string that is not valid UTF-16 (an unpaired surrogate escape).",
                    envelope.ClientFormat == ApiFormat.Anthropic ? $"tools.{i}.input_schema" : $"tools[{i}].function.parameters");
            }
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
