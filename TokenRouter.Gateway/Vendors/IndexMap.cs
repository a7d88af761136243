namespace TokenRouter.Gateway.Vendors;

/// <summary>
/// Small non-negative indexes of one stream mapped to those of the other format (an Anthropic content block to an OpenAI
/// tool call and back): an array that grows as indexes appear, -1 where nothing is mapped. A stream has a handful.
/// </summary>
internal sealed class IndexMap
{
    private int[] _to = [-1, -1, -1, -1, -1, -1, -1, -1];

    /// <summary>The mapped index, or -1.</summary>
    public int this[int from] => from >= 0 && from < _to.Length ? _to[from] : -1;

    public void Set(int from, int to)
    {
        if (from >= _to.Length)
        {
            var grown = new int[Math.Max(from + 1, _to.Length * 2)];
            Array.Fill(grown, -1);
            _to.CopyTo(grown, 0);
            _to = grown;
        }
        _to[from] = to;
    }
}
