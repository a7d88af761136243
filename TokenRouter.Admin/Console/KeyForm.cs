using System.Globalization;
using TokenRouter.Admin.Apis;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Console;

/// <summary>
/// The key form as typed: every field is text, parsed here (invariant culture; empty means unlimited or never), then
/// validated by the same code as the REST API (<see cref="ApiKeysApi"/>), whose messages are shown by field.
/// </summary>
public sealed class KeyForm
{
    public string? Name { get; set; }
    public string? QuotaUsd { get; set; }
    public string? RpmLimit { get; set; }
    public string? TpmLimit { get; set; }

    /// <summary>UTC, as an <c>input type="datetime-local"</c> sends it (<c>yyyy-MM-ddTHH:mm</c>).</summary>
    public string? ExpiresAt { get; set; }

    private static readonly string[] DateFormats = ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss.fff", "yyyy-MM-dd"];

    public static KeyForm From(ApiKey key) => new()
    {
        Name = key.Name,
        QuotaUsd = Fmt.Plain(key.QuotaUsd.Trimmed()),
        RpmLimit = Fmt.Plain(key.RequestsPerMinute),
        TpmLimit = Fmt.Plain(key.TokensPerMinute),
        ExpiresAt = Fmt.DateTimeLocal(key.ExpiresAt),
    };

    /// <summary>The typed values, or field errors (keyed like the API's: name, quota_usd, rpm_limit, tpm_limit, expires_at).</summary>
    public (decimal? Quota, int? Rpm, int? Tpm, DateTimeOffset? Expires, Dictionary<string, string[]> Errors) Parse()
    {
        var errors = new Dictionary<string, string[]>();
        decimal? quota = null;
        if (!string.IsNullOrWhiteSpace(QuotaUsd))
        {
            var text = QuotaUsd.Trim().TrimStart('$').Trim();
            if (decimal.TryParse(text, NumberStyles.AllowDecimalPoint | NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out var value))
            {
                quota = value;
            }
            else
            {
                errors["quota_usd"] = ["Enter an amount in US dollars, like 25 or 12.50 (empty means unlimited)."];
            }
        }
        var rpm = ParseLimit(RpmLimit, "rpm_limit", "requests per minute", errors);
        var tpm = ParseLimit(TpmLimit, "tpm_limit", "tokens per minute", errors);
        DateTimeOffset? expires = null;
        if (!string.IsNullOrWhiteSpace(ExpiresAt))
        {
            if (DateTime.TryParseExact(ExpiresAt.Trim(), DateFormats, CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value))
            {
                expires = new DateTimeOffset(value, TimeSpan.Zero);
            }
            else
            {
                errors["expires_at"] = ["Enter a date and time in UTC, like 2027-01-31T18:00 (empty means never)."];
            }
        }
        return (quota, rpm, tpm, expires, errors);
    }

    private static int? ParseLimit(string? text, string field, string what, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        if (int.TryParse(text.Trim(), NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }
        errors[field] = [$"Enter a whole number of {what} (empty means unlimited)."];
        return null;
    }
}
