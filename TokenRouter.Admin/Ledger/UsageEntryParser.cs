using System.Globalization;
using System.Text;
using System.Text.Json;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Contracts;
using F = TokenRouter.Contracts.RedisContract.UsageFields;

namespace TokenRouter.Admin.Ledger;

/// <summary>One stream entry, read: either a ledger row or the reason it has to be parked.</summary>
public readonly record struct ParsedUsageEntry(RedisValue StreamId, UsageRecord? Record, UsageDeadLetter? DeadLetter);

/// <summary>
/// Turns a <see cref="RedisContract.UsageStream"/> entry into a <see cref="UsageRecord"/>. Optional fields that are
/// absent get their neutral value (no savings, flags off, the entry's own timestamp); a field that is present but
/// unreadable parks the whole entry, because a made-up number in a money ledger is worse than a visible gap.
/// </summary>
public static class UsageEntryParser
{
    // Column limits (AdminDbContext): what does not fit is parked rather than cut.
    private const int MaxRequestIdLength = 128, MaxModelLength = 200, MaxProviderLength = 64, MaxReasonValue = 80;

    // numeric(20,10): ten integer digits.
    private const decimal MaxUsd = 9_999_999_999m;

    public static ParsedUsageEntry Parse(StreamEntry entry, DateTimeOffset now)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var value in entry.Values ?? [])
        {
            fields[value.Name.ToString()] = value.Value.ToString();
        }

        if (fields.Count == 0)
        {
            // A pending entry whose data was deleted from the stream (XDEL or an outside XTRIM) reads back empty.
            return Park(entry.Id, fields, null, "The entry has no fields (deleted from the stream before it was stored).", now);
        }

        var reader = new FieldReader(fields);
        var requestId = reader.Text(F.RequestId, required: true, MaxRequestIdLength);
        var record = reader.Error is not null ? null : new UsageRecord
        {
            RequestId = requestId!,
            ApiKeyId = Guid.TryParse(reader.Text(F.KeyId, required: false, int.MaxValue), out var keyId) ? keyId : null,
            Model = reader.Text(F.Model, required: true, MaxModelLength)!,
            Provider = reader.Text(F.Provider, required: false, MaxProviderLength) ?? "unknown",
            PromptTokens = reader.Tokens(F.PromptTokens, required: true),
            CachedReadTokens = reader.Tokens(F.CachedReadTokens, required: false),
            CacheWrite5mTokens = reader.Tokens(F.CacheWrite5mTokens, required: false),
            CacheWrite1hTokens = reader.Tokens(F.CacheWrite1hTokens, required: false),
            CompletionTokens = reader.Tokens(F.CompletionTokens, required: true),
            CostUsd = reader.Usd(F.CostUsd, allowNegative: false),
            CacheSavingsUsd = reader.Usd(F.CacheSavingsUsd, allowNegative: true) ?? 0m, // cache writes can cost more than they save
            DedupSavingsUsd = reader.Usd(F.DedupSavingsUsd, allowNegative: false) ?? 0m,
            Unpriced = reader.Flag(F.Unpriced),
            Deduplicated = reader.Flag(F.Deduplicated),
            Stream = reader.Flag(F.Stream),
            Estimated = reader.Flag(UsageLedger.EstimatedField),
            Status = reader.Integer(F.Status),
            LatencyMs = reader.Integer(F.LatencyMs),
            CreatedAt = reader.Timestamp(F.TimestampUnixMs, entry.Id),
            // Older gateways write neither; an empty field means none.
            Tags = reader.Text(F.Tags, required: false, UsageRecord.MaxTagsLength),
            EndUser = reader.Text(F.EndUser, required: false, UsageRecord.MaxEndUserLength),
        };

        if (reader.Error is { } error)
        {
            return Park(entry.Id, fields, requestId, error, now);
        }

        // An entry without a cost was not priced, whatever its flag says: never counted as $0 of spend.
        record!.Unpriced |= record.CostUsd is null;
        return new ParsedUsageEntry(entry.Id, record, null);
    }

    private static ParsedUsageEntry Park(RedisValue id, Dictionary<string, string> fields, string? requestId, string reason, DateTimeOffset now) =>
        new(id, null, DeadLetter(id.ToString(), requestId, reason,
            JsonSerializer.Serialize(fields.ToDictionary(f => StorableText(f.Key), f => StorableText(f.Value))), now));

    /// <summary>A dead letter Postgres is sure to accept: no NUL characters, lengths within the columns.</summary>
    internal static UsageDeadLetter DeadLetter(string streamId, string? requestId, string reason, string fieldsJson, DateTimeOffset now)
    {
        requestId = requestId is null ? null : StorableText(requestId);
        reason = StorableText(reason);
        return new UsageDeadLetter
        {
            StreamId = streamId,
            RequestId = requestId is { Length: <= MaxRequestIdLength } ? requestId : null,
            Reason = reason.Length <= 500 ? reason : reason[..500],
            // jsonb refuses the \u0000 escape just as text refuses NUL.
            Fields = fieldsJson.Replace("\\u0000", "\\uFFFD", StringComparison.Ordinal),
            ReceivedAt = now,
        };
    }

    private static string StorableText(string value) => value.Replace('\0', '\uFFFD');

    /// <summary>Reads fields and remembers the first problem, so one pass reports what was wrong.</summary>
    private sealed class FieldReader(Dictionary<string, string> fields)
    {
        public string? Error { get; private set; }

        public string? Text(string name, bool required, int maxLength)
        {
            if (!fields.TryGetValue(name, out var value) || value.Length == 0)
            {
                if (required)
                {
                    Fail($"The field '{name}' is missing.");
                }
                return null;
            }
            if (value.Length > maxLength)
            {
                Fail($"The field '{name}' is longer than {maxLength} characters.");
            }
            else if (value.Contains('\0', StringComparison.Ordinal))
            {
                Fail($"The field '{name}' contains a NUL character, which Postgres text cannot hold.");
            }
            return value;
        }

        public int Tokens(string name, bool required)
        {
            if (!fields.TryGetValue(name, out var text) || text.Length == 0)
            {
                if (required)
                {
                    Fail($"The field '{name}' is missing.");
                }
                return 0;
            }
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                Fail($"The field '{name}' is not a token count: '{Shorten(text)}'.");
            }
            return value;
        }

        public int Integer(string name)
        {
            if (!fields.TryGetValue(name, out var text) || text.Length == 0)
            {
                return 0;
            }
            if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            {
                Fail($"The field '{name}' is not an integer: '{Shorten(text)}'.");
            }
            return (int)Math.Clamp(value, int.MinValue, int.MaxValue);
        }

        public decimal? Usd(string name, bool allowNegative)
        {
            if (!fields.TryGetValue(name, out var text) || text.Length == 0)
            {
                return null;
            }
            if (!decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ||
                (!allowNegative && value < 0) || Math.Abs(value) > MaxUsd)
            {
                Fail($"The field '{name}' is not a valid USD amount: '{Shorten(text)}'.");
                return null;
            }
            return Math.Round(value, 10, MidpointRounding.AwayFromZero); // the column's scale
        }

        public bool Flag(string name)
        {
            if (!fields.TryGetValue(name, out var text) || text.Length == 0)
            {
                return false;
            }
            switch (text)
            {
                case "1" or "true" or "True":
                    return true;
                case "0" or "false" or "False":
                    return false;
                default:
                    Fail($"The field '{name}' is not a flag (\"1\" or \"0\"): '{Shorten(text)}'.");
                    return false;
            }
        }

        public DateTimeOffset Timestamp(string name, RedisValue streamId)
        {
            if (fields.TryGetValue(name, out var text) && text.Length > 0)
            {
                if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) &&
                    ms is >= UsageLedger.MinTimestampMs and <= UsageLedger.MaxTimestampMs)
                {
                    return DateTimeOffset.FromUnixTimeMilliseconds(ms);
                }
                Fail($"The field '{name}' is not a unix time in milliseconds: '{Shorten(text)}'.");
                return default;
            }
            // Absent: the entry id's first part is when Redis appended it, at most a batch interval after the request.
            return DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp((long)StreamId.Parse(streamId).Milliseconds,
                UsageLedger.MinTimestampMs, UsageLedger.MaxTimestampMs));
        }

        private void Fail(string message) => Error ??= message;

        private static string Shorten(string value)
        {
            var shortened = value.Length <= MaxReasonValue ? value : value[..MaxReasonValue] + "…";
            var sb = new StringBuilder(shortened.Length);
            foreach (var c in shortened)
            {
                sb.Append(char.IsControl(c) ? '?' : c);
            }
            return sb.ToString();
        }
    }
}
