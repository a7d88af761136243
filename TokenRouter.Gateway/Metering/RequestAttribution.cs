using System.Text.Json;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Metering;

/// <summary>
/// What a request's spend is booked to besides its key: tags (<c>x-tokenrouter-tags: a,b</c>, and on OpenAI-format
/// requests <c>metadata.tags</c> as a comma-separated string or an array of strings) and the client's end user
/// (OpenAI's <c>user</c>, Anthropic's <c>metadata.user_id</c>). Read only: the request body is not changed. Bad tags are
/// refused with a 400 rather than trimmed, so a report never silently books spend to a tag nobody sent.
/// </summary>
public static class RequestAttribution
{
    public const string TagsHeader = "x-tokenrouter-tags";
    public const int MaxTags = 16;
    public const int MaxTagLength = 64;
    /// <summary>Longer end-user ids are cut to this length in the ledger (the provider still gets the whole one).</summary>
    public const int MaxEndUserLength = 256;

    /// <summary>The identity carrying this request's attribution; the same instance when there is none.</summary>
    public static ClientIdentity Apply(ClientIdentity identity, HttpRequest request, List<KeyValuePair<string, JsonElement>>? bodyFields)
    {
        var header = request.Headers[TagsHeader];
        List<string>? tags = null;
        foreach (var value in header) AddAll(ref tags, value, TagsHeader);

        string? endUser = null;
        if (bodyFields is not null)
        {
            foreach (var (name, value) in bodyFields)
            {
                if (name == "user" && value.ValueKind == JsonValueKind.String) endUser = value.GetString();
                else if (name == "metadata" && value.ValueKind == JsonValueKind.Object)
                {
                    if (value.TryGetProperty("user_id"u8, out var id) && id.ValueKind == JsonValueKind.String) endUser ??= id.GetString();
                    if (value.TryGetProperty("tags"u8, out var bodyTags)) AddBodyTags(ref tags, bodyTags);
                }
            }
        }

        if (tags is null && string.IsNullOrEmpty(endUser)) return identity;
        return identity with
        {
            Tags = tags is null ? null : string.Join(',', tags),
            EndUser = string.IsNullOrEmpty(endUser) ? null : endUser.Length > MaxEndUserLength ? endUser[..MaxEndUserLength] : endUser,
        };
    }

    /// <summary>The passthrough endpoints' attribution: their bodies are relayed unread, so only the header counts.</summary>
    public static ClientIdentity Apply(ClientIdentity identity, HttpRequest request) => Apply(identity, request, null);

    private static void AddBodyTags(ref List<string>? tags, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                AddAll(ref tags, value.GetString(), "metadata.tags");
                break;
            case JsonValueKind.Array:
                foreach (var item in value.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String)
                        throw ApiError.InvalidRequest("metadata.tags must be a string or an array of strings.", "metadata.tags");
                    AddAll(ref tags, item.GetString(), "metadata.tags");
                }
                break;
            default:
                throw ApiError.InvalidRequest("metadata.tags must be a string or an array of strings.", "metadata.tags");
        }
    }

    private static void AddAll(ref List<string>? tags, string? text, string source)
    {
        if (string.IsNullOrEmpty(text)) return;
        foreach (var range in text.AsSpan().Split(','))
        {
            var tag = text.AsSpan()[range].Trim();
            if (tag.IsEmpty) continue;
            if (tag.Length > MaxTagLength || tag.ContainsAnyInRange('\0', '\u001f') || tag.Contains('\u007f'))
                throw ApiError.InvalidRequest(
                    $"{source}: a tag is at most {MaxTagLength} characters, without control characters.", source);
            tags ??= [];
            if (Contains(tags, tag)) continue;
            if (tags.Count == MaxTags) throw ApiError.InvalidRequest($"{source}: at most {MaxTags} tags per request.", source);
            tags.Add(tag.ToString());
        }
    }

    private static bool Contains(List<string> tags, ReadOnlySpan<char> tag)
    {
        foreach (var t in tags)
        {
            if (tag.SequenceEqual(t)) return true;
        }
        return false;
    }
}
