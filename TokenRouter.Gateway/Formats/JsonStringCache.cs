using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace TokenRouter.Gateway.Formats;

/// <summary>
/// Decoded strings of a request's JSON, shared across requests: model and tool names, tool-call ids and arguments.
/// An agent resends its whole history on every turn, so nearly all of these were decoded from the same bytes one
/// request earlier; the same raw bytes now return the same string instead of a new one (recorded sessions, OpenAI
/// client: ~2 KB a request less; see the README's "Allocation budgets"). Only values, each equal to what the
/// request itself carries, are shared; a hit saves a decode of a few hundred nanoseconds, far below what a client
/// could time. Bounded: values over <see cref="MaxValueBytes"/> are not kept, and the cache is emptied whenever
/// what it holds passes <see cref="BudgetBytes"/>.
/// </summary>
internal static class JsonStringCache
{
    /// <summary>Longer values are decoded afresh each time: long texts rarely repeat byte for byte.</summary>
    public const int MaxValueBytes = 512;
    private const long BudgetBytes = 4L << 20;

    private static readonly ConcurrentDictionary<byte[], string> Cache = new(RawComparer.Instance);
    private static readonly ConcurrentDictionary<byte[], string>.AlternateLookup<ReadOnlySpan<byte>> ByRaw =
        Cache.GetAlternateLookup<ReadOnlySpan<byte>>();
    private static long s_held;

    /// <summary>The value of a JSON string element (its kind already checked).</summary>
    public static string Get(JsonElement value) => Get(value, static e => e.GetString()!);

    /// <summary>An object's or array's JSON text as sent (an Anthropic tool call's input, say).</summary>
    public static string GetRawText(JsonElement value) => Get(value, static e => e.GetRawText());

    private static string Get(JsonElement value, Func<JsonElement, string> decode)
    {
        // The raw token, quotes and escapes included: equal bytes always decode to equal strings, and a string's
        // token (quoted) never equals an object's or array's.
        var raw = JsonMarshal.GetRawUtf8Value(value);
        if (raw.Length > MaxValueBytes) return decode(value);
        if (ByRaw.TryGetValue(raw, out var known)) return known;
        var decoded = decode(value);
        // Key array, string and entry, roughly.
        if (Interlocked.Add(ref s_held, raw.Length * 3L + 96) > BudgetBytes)
        {
            Cache.Clear();
            Interlocked.Exchange(ref s_held, 0);
        }
        ByRaw.TryAdd(raw, decoded);
        return decoded;
    }

    private sealed class RawComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly RawComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        // HashCode is seeded per process: a client cannot choose values that collide.
        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = new HashCode();
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}
