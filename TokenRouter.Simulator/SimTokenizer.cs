using System.Text;

namespace TokenRouter.Simulator;

/// <summary>
/// The simulator's deterministic token count: one token per started 4 bytes of UTF-8 (ceil(bytes / 4)).
/// Real BPE tokenizers average ~4 bytes per token on English and JSON, and a byte-based rule lets prefix
/// boundaries map to exact byte offsets, which is what the prefix-cache emulation needs.
/// </summary>
public static class SimTokenizer
{
    public const int BytesPerToken = 4;

    public static int CountTokens(int utf8ByteCount) => utf8ByteCount <= 0 ? 0 : (utf8ByteCount + BytesPerToken - 1) / BytesPerToken;

    public static int CountTokens(ReadOnlySpan<byte> utf8) => CountTokens(utf8.Length);

    public static int CountTokens(string text) => CountTokens(Encoding.UTF8.GetByteCount(text));

    /// <summary>Byte offset where token <paramref name="tokens"/> starts (token boundaries are every 4 bytes).</summary>
    public static int ByteOffsetOfToken(int tokens) => tokens * BytesPerToken;
}
