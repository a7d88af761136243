using System.Numerics;
using System.Runtime.InteropServices;

namespace TokenRouter.Simulator;

/// <summary>
/// 128-bit non-cryptographic hash used as a prefix-cache key. Chaining (<see cref="Append"/>) gives every
/// block boundary a hash of the whole prefix before it while touching each byte once. Keys live only in this
/// process, so the function need not be stable across versions; 128 bits keep collisions negligible.
/// </summary>
internal readonly record struct SimHash(ulong Lo, ulong Hi)
{
    private const ulong P1 = 0x9E3779B185EBCA87UL;
    private const ulong P2 = 0xC2B2AE3D27D4EB4FUL;
    private const ulong P3 = 0x165667B19E3779F9UL;
    private const ulong P4 = 0x85EBCA77C2B2AE63UL;
    private const ulong P5 = 0x27D4EB2F165667C5UL;

    public static SimHash Of(ReadOnlySpan<byte> data) => default(SimHash).Append(data);

    /// <summary>Hash of (this prefix) followed by <paramref name="block"/>.</summary>
    public SimHash Append(ReadOnlySpan<byte> block)
    {
        ulong a = Lo ^ P5;
        ulong b = Hi ^ P3;
        var words = MemoryMarshal.Cast<byte, ulong>(block);
        foreach (var w in words)
        {
            a = BitOperations.RotateLeft(a ^ (w * P2), 31) * P1;
            b = BitOperations.RotateLeft(b + (w * P4), 27) * P2 + P5;
        }

        var tail = block[(words.Length * sizeof(ulong))..];
        if (!tail.IsEmpty)
        {
            ulong t = 0;
            for (var i = 0; i < tail.Length; i++)
                t |= (ulong)tail[i] << (8 * i);
            a = BitOperations.RotateLeft(a ^ (t * P2), 31) * P1;
            b = BitOperations.RotateLeft(b + (t * P4), 27) * P2 + P5;
        }

        // The length separates "AB"+"C" from "A"+"BC" once chained.
        a ^= (ulong)block.Length * P3;
        b += (ulong)block.Length;
        a = Mix(a + b);
        b = Mix(b ^ a ^ P4);
        return new SimHash(a, b);
    }

    private static ulong Mix(ulong h)
    {
        h ^= h >> 33;
        h *= 0xFF51AFD7ED558CCDUL;
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53UL;
        h ^= h >> 33;
        return h;
    }

    public override string ToString() => $"{Hi:x16}{Lo:x16}";
}
