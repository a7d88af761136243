using System.Buffers;
using System.Collections.Concurrent;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Telemetry;

/// <summary>
/// Model names as they may appear in metric labels and log lines. A model name is client input: a thousand distinct
/// unknown names would be a thousand series, and a raw control character would corrupt the exposition. Models the
/// gateway lists a price for (list prices, configured or Admin overrides, the simulator's) keep their name; variants
/// priced as a listed model (<c>gpt-4o-2024-08-06</c>) keep theirs for the first <see cref="MaxVariants"/> seen and
/// are labelled as the listed model after that; every other name shares <see cref="Other"/>. The usage ledger still
/// records every name in full.
/// </summary>
public sealed class ModelLabels(PriceTable prices)
{
    public const string Other = "other";
    public const int MaxVariants = 64;
    private const int MaxLength = 128;
    private readonly ConcurrentDictionary<string, bool> _variants = new(StringComparer.OrdinalIgnoreCase);

    private static readonly SearchValues<char> Unsafe = SearchValues.Create(
        "\0\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\"\\\u007f");

    /// <summary>The label of <paramref name="model"/>: its name when it is priced and printable, else <see cref="Other"/>.</summary>
    public string For(string? model)
    {
        if (model is not { Length: > 0 and <= MaxLength } || model.AsSpan().IndexOfAny(Unsafe) >= 0) return Other;
        if (model[0] == '(') return model; // the passthrough's bounded resource labels
        if (!prices.TryGet(model, out _, out var listedAs)) return Other;
        if (ReferenceEquals(listedAs, model) || _variants.ContainsKey(model)) return model;
        if (_variants.Count >= MaxVariants) return listedAs;
        _variants.TryAdd(model, true);
        return model;
    }

    /// <summary>A client-given name made safe to log: printable, at most 64 characters.</summary>
    public static string Printable(string name)
    {
        var span = name.AsSpan(0, Math.Min(name.Length, 64));
        if (span.IndexOfAny(Unsafe) < 0 && span.Length == name.Length) return name;
        var chars = span.ToArray();
        for (var i = 0; i < chars.Length; i++)
        {
            if (Unsafe.Contains(chars[i])) chars[i] = '?';
        }
        return new string(chars) + (name.Length > 64 ? "…" : "");
    }
}
