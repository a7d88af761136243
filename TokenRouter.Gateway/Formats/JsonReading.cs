using System.Text.Json;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Formats;

/// <summary>Typed reads of request fields that fail with a 400 naming the offending field.</summary>
internal static class JsonReading
{
    public static string RequireString(JsonElement e, string param)
    {
        if (e.ValueKind != JsonValueKind.String)
            throw ApiError.InvalidRequest($"'{param}' must be a string.", param);
        return JsonStringCache.Get(e);
    }

    /// <summary><see cref="RequireString(JsonElement, string)"/> that returns the matching instance of <paramref name="known"/>
    /// when the value is one of them: a role or block type, read for every message and block, then costs no string.</summary>
    public static string RequireStringOf(JsonElement e, string param, params ReadOnlySpan<string> known)
    {
        if (e.ValueKind != JsonValueKind.String)
            throw ApiError.InvalidRequest($"'{param}' must be a string.", param);
        foreach (var k in known)
        {
            if (e.ValueEquals(k)) return k;
        }
        return e.GetString()!;
    }

    /// <summary>The element itself once it is known to be a string (kept as a token, decoded only if needed).</summary>
    public static JsonElement RequireStringToken(JsonElement e, string param) =>
        e.ValueKind == JsonValueKind.String ? e : throw ApiError.InvalidRequest($"'{param}' must be a string.", param);

    public static JsonElement OptionalStringToken(JsonElement e, string param) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => default,
        JsonValueKind.String => e,
        _ => throw ApiError.InvalidRequest($"'{param}' must be a string.", param),
    };

    public static string? OptionalString(JsonElement e, string param) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.String => JsonStringCache.Get(e),
        _ => throw ApiError.InvalidRequest($"'{param}' must be a string.", param),
    };

    public static bool OptionalBool(JsonElement e, string param) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False or JsonValueKind.Null or JsonValueKind.Undefined => false,
        _ => throw ApiError.InvalidRequest($"'{param}' must be a boolean.", param),
    };

    public static bool? OptionalNullableBool(JsonElement e, string param) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        _ => throw ApiError.InvalidRequest($"'{param}' must be a boolean.", param),
    };

    public static int? OptionalPositiveInt(JsonElement e, string param)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out var v) || v < 1)
            throw ApiError.InvalidRequest($"'{param}' must be a positive integer.", param);
        return v;
    }

    public static double? OptionalNumber(JsonElement e, string param)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        // 1e999 parses as JSON but not as a finite double, and no provider accepts infinity.
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out var v) || !double.IsFinite(v))
            throw ApiError.InvalidRequest($"'{param}' must be a finite number.", param);
        return v;
    }

    public static List<string>? StopSequences(JsonElement e, string param)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Null or JsonValueKind.Undefined:
                return null;
            case JsonValueKind.String:
                return [e.GetString()!];
            case JsonValueKind.Array:
                var list = new List<string>(e.GetArrayLength());
                foreach (var item in e.EnumerateArray()) list.Add(RequireString(item, param));
                return list;
            default:
                throw ApiError.InvalidRequest($"'{param}' must be a string or an array of strings.", param);
        }
    }

    public static void RequireObject(JsonElement e, string param)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw ApiError.InvalidRequest($"'{param}' must be an object.", param);
    }

    public static void RequireArray(JsonElement e, string param)
    {
        if (e.ValueKind != JsonValueKind.Array)
            throw ApiError.InvalidRequest($"'{param}' must be an array.", param);
    }

    public static CacheControl? CacheControlOf(JsonElement e, string param)
    {
        if (e.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return null;
        RequireObject(e, param);
        string? ttl = null;
        if (e.TryGetProperty("ttl"u8, out var t)) ttl = OptionalString(t, param + ".ttl");
        if (ttl is not null and not "5m" and not "1h")
            throw ApiError.InvalidRequest($"'{param}.ttl' must be \"5m\" or \"1h\".", param + ".ttl");
        return ttl == "1h" ? CacheControl.OneHour : CacheControl.FiveMinutes;
    }

    /// <summary>
    /// Reads every element of an array with a reader that names fields relative to its element (".role"); a field error
    /// gets the element's path in front — OpenAI's <c>messages[3].role</c> or, with <paramref name="dotted"/>, Anthropic's
    /// <c>messages.3.role</c> — so paths are built only for requests that fail (<see cref="ApiError.UnderParam"/>).
    /// </summary>
    public static List<T> ReadArray<T>(JsonElement array, string name, bool dotted, Func<JsonElement, T> read)
    {
        var list = new List<T>(array.GetArrayLength());
        var i = 0;
        foreach (var element in array.EnumerateArray())
        {
            try
            {
                list.Add(read(element));
            }
            catch (ApiError error) when (error.Param is not null)
            {
                throw error.UnderParam(dotted ? $"{name}.{i}" : $"{name}[{i}]");
            }
            i++;
        }
        return list;
    }

    public static void AddExtra(ref List<KeyValuePair<string, JsonElement>>? extra, JsonProperty p) =>
        (extra ??= []).Add(new(p.Name, p.Value));

    /// <summary>A top-level field passed on unread: a number in it must be one a provider can take (finite; whole where
    /// the APIs count something), or the provider's 400 would be billed as the gateway's call.</summary>
    public static JsonProperty CheckedTopLevel(JsonProperty p)
    {
        var v = p.Value;
        if (v.ValueKind != JsonValueKind.Number) return p;
        if (!v.TryGetDouble(out var d) || !double.IsFinite(d))
            throw ApiError.InvalidRequest($"'{p.Name}' must be a finite number.", p.Name);
        if ((p.NameEquals("n"u8) || p.NameEquals("top_k"u8) || p.NameEquals("top_logprobs"u8) || p.NameEquals("seed"u8))
            && !v.TryGetInt64(out _))
            throw ApiError.InvalidRequest($"'{p.Name}' must be an integer.", p.Name);
        if ((p.NameEquals("n"u8) || p.NameEquals("top_k"u8) || p.NameEquals("top_logprobs"u8)) && !v.TryGetInt32(out _))
            throw ApiError.InvalidRequest($"'{p.Name}' is out of range.", p.Name);
        return p;
    }

    /// <summary>A second value for a field the gateway routes or rewrites by: which one would the provider read?</summary>
    public static ApiError Duplicate(string field) => ApiError.InvalidRequest($"The request body names '{field}' more than once.", field);
}
