using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Pipeline;

/// <summary>
/// Pipeline stage: PrefixHash (model + system + tools in canonical form: the shared cacheable prefix) and FullHash
/// (the whole canonical upstream request, the provider it goes to and the dedup scope). FullHash is taken over the
/// outbound bytes, which are canonical by construction, so two requests share it exactly when they would send
/// the same bytes to the same provider. XxHash128: fast, and collisions are confined to one scope by default.
/// </summary>
public static class Hasher
{
    public static string ComputePrefixHash(Envelope envelope)
    {
        var hash = RentHasher();
        AppendString(hash, envelope.Model);
        if (envelope.System is { } system)
        {
            foreach (var part in system)
            {
                AppendText(hash, part.TextValue);
                UnknownFields.HashSystemPart(hash, part);
            }
        }
        foreach (var m in envelope.Messages)
        {
            if (m.Role is not (MessageRole.System or MessageRole.Developer)) break;
            AppendText(hash, m.TextValue);
            if (m.Parts is { } parts) foreach (var p in parts) AppendText(hash, p.TextValue);
            UnknownFields.HashExtra(hash, m.Extra);
        }
        foreach (var tool in envelope.Tools)
        {
            AppendString(hash, tool.Name);
            AppendText(hash, tool.DescriptionValue);
            if (tool.CanonicalParameters is { } canonical) hash.Append(canonical);
            else if (tool.Parameters.ValueKind != System.Text.Json.JsonValueKind.Undefined) hash.Append(JsonMarshal.GetRawUtf8Value(tool.Parameters));
            else if (tool.IsRaw) hash.Append(JsonMarshal.GetRawUtf8Value(tool.Raw));
            UnknownFields.HashTool(hash, tool, envelope.ClientFormat);
        }
        return PrefixHex(ReturnHasher(hash));
    }

    public static string ComputeFullHash(ReadOnlySpan<byte> outboundBody, string providerName, string scope)
    {
        var hash = RentHasher();
        AppendString(hash, scope);
        AppendString(hash, providerName);
        hash.Append(outboundBody);
        return ToHex(ReturnHasher(hash));
    }

    // An XxHash128 carries ~600 bytes of state: one per thread, reset for each use, instead of one per hash.
    [ThreadStatic] private static XxHash128? t_hasher;

    internal static XxHash128 RentHasher()
    {
        var hash = t_hasher ?? new XxHash128();
        t_hasher = null;
        hash.Reset();
        return hash;
    }

    /// <summary>Gives the hasher back and returns its hash.</summary>
    internal static UInt128 ReturnHasher(XxHash128 hash)
    {
        var value = hash.GetCurrentHashAsUInt128();
        t_hasher = hash;
        return value;
    }

    private static void AppendText(XxHash128 hash, JsonText text)
    {
        text.AppendTo(hash);
        hash.Append([0xFF]);
    }

    private static void AppendString(XxHash128 hash, string? s)
    {
        if (s is not null) hash.Append(MemoryMarshal.AsBytes(s.AsSpan()));
        hash.Append([0xFF]);
    }

    /// <summary>Prefix hashes whose hex is kept, at most (then emptied).</summary>
    internal const int MaxKeptPrefixes = 4096;

    // An agent sends the same prefix on every turn: its hex (a header, the prompt cache key's stem, the affinity key) is
    // made once per value instead of once per request. A full hash is unique to its request and is not kept.
    private static readonly TextCache<UInt128> PrefixHexes = new(MaxKeptPrefixes);

    private static string PrefixHex(UInt128 value) => PrefixHexes.Get(value, 0, static (v, _) => ToHex(v));

    // The same 32 lowercase digits as value.ToString("x32"), whose UInt128 path allocates ~100 B of temporaries.
    private static string ToHex(UInt128 value)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, value);
        return Convert.ToHexStringLower(bytes);
    }
}
