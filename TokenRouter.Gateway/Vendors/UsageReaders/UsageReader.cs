using System.Text.Json;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Vendors.UsageReaders;

/// <summary>What every vendor's reader does the same way: finding the <c>usage</c> object, reading a count. A vendor's
/// reader says only how its <c>usage</c> object reads.</summary>
public abstract class UsageReader : IUsageReader
{
    public abstract Usage ReadUsage(JsonElement usage);

    public Usage ReadResponse(JsonElement responseRoot) =>
        responseRoot.ValueKind == JsonValueKind.Object && responseRoot.TryGetProperty("usage"u8, out var u) ? ReadUsage(u) : default;

    public bool TryRead(ReadOnlySpan<byte> body, out Usage usage)
    {
        usage = default;
        try
        {
            // One validating pass over the response; only the usage object becomes a document (not a copy of it all).
            var json = new Utf8JsonReader(body);
            if (!json.Read() || json.TokenType != JsonTokenType.StartObject) return false;
            while (json.Read())
            {
                if (json.TokenType != JsonTokenType.PropertyName || json.CurrentDepth != 1 || !json.ValueTextEquals("usage"u8)) continue;
                json.Read();
                using var u = JsonDocument.ParseValue(ref json);
                usage = ReadUsage(u.RootElement);
            }
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>A token count; absent, not a number or beyond <see cref="int"/> reads as 0.</summary>
    protected static int Int(JsonElement o, ReadOnlySpan<byte> name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : 0;
}
