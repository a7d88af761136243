using System.Globalization;
using StackExchange.Redis;

namespace TokenRouter.Admin.Ledger;

/// <summary>A Redis stream entry id, <c>{milliseconds}-{sequence}</c>, ordered as Redis orders them.</summary>
public readonly record struct StreamId(ulong Milliseconds, ulong Sequence) : IComparable<StreamId>
{
    public static readonly StreamId Zero = new(0, 0);

    public static StreamId Parse(RedisValue value)
    {
        var text = value.ToString();
        var dash = text.IndexOf('-');
        var ms = dash < 0 ? text : text[..dash];
        var seq = dash < 0 ? "0" : text[(dash + 1)..];
        return ulong.TryParse(ms, NumberStyles.None, CultureInfo.InvariantCulture, out var m) &&
               ulong.TryParse(seq, NumberStyles.None, CultureInfo.InvariantCulture, out var s)
            ? new StreamId(m, s)
            : throw new FormatException($"'{text}' is not a stream entry id.");
    }

    /// <summary>The smallest id after this one (XTRIM MINID keeps the given id, so trimming "through" x uses this).</summary>
    public StreamId Successor() => Sequence == ulong.MaxValue ? new StreamId(Milliseconds + 1, 0) : this with { Sequence = Sequence + 1 };

    public int CompareTo(StreamId other) =>
        Milliseconds != other.Milliseconds ? Milliseconds.CompareTo(other.Milliseconds) : Sequence.CompareTo(other.Sequence);

    public static bool operator <(StreamId a, StreamId b) => a.CompareTo(b) < 0;
    public static bool operator >(StreamId a, StreamId b) => a.CompareTo(b) > 0;
    public static bool operator <=(StreamId a, StreamId b) => a.CompareTo(b) <= 0;
    public static bool operator >=(StreamId a, StreamId b) => a.CompareTo(b) >= 0;

    public override string ToString() =>
        Milliseconds.ToString(CultureInfo.InvariantCulture) + "-" + Sequence.ToString(CultureInfo.InvariantCulture);
}
