namespace TokenRouter.Admin.Data;

internal static class DecimalExtensions
{
    /// <summary>Drops the trailing zeros a numeric(p,s) column adds (100.0000000000 → 100), keeping the value exact.</summary>
    public static decimal Trimmed(this decimal value) => value / 1.000000000000000000000000000000000m;

    public static decimal? Trimmed(this decimal? value) => value?.Trimmed();
}
