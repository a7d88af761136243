namespace TokenRouter.Admin.Data;

/// <summary>List prices of one model in USD per million tokens.</summary>
public sealed class ModelPrice
{
    public required string Model { get; set; }
    public decimal InputPerMTok { get; set; }
    public decimal CachedInputPerMTok { get; set; }
    public decimal CacheWrite5mPerMTok { get; set; }
    public decimal CacheWrite1hPerMTok { get; set; }
    public decimal OutputPerMTok { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}
