using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TokenRouter.Contracts;

/// <summary>
/// The whole contract between Admin (writer) and the Gateway (reader) in Redis. It lives in this small library that
/// both projects reference, so the two sides cannot drift; tests exercise both sides against a real Redis.
/// </summary>
/// <remarks>
/// <para><b>API keys</b>: one hash per client key at <c>tokenrouter:key:{sha256-hex of the key}</c> with the
/// fields below. Admin writes it on create/update and deletes it on revoke; Admin republishes every active key at
/// start-up, so a flushed Redis heals itself. After a change Admin publishes the hash id on
/// <see cref="KeysChangedChannel"/> so gateways can drop their local auth cache entry early.</para>
/// <para><b>Usage</b>: the gateway appends one entry per request to the stream <see cref="UsageStream"/>;
/// Admin drains it with the consumer group <see cref="UsageConsumerGroup"/> into Postgres, idempotently by request id,
/// and trims what it has acknowledged (the gateway never trims: an entry must not vanish before Admin has it). Entry
/// fields are <see cref="UsageFields"/>: numbers are invariant-culture text, flags <c>"1"</c>/<c>"0"</c>. Only request id,
/// key id, model, provider, prompt and completion tokens, status, latency and timestamp are always there; every other
/// field is left out when it holds its neutral value (no cost = unpriced, 0, flag off, empty), which a reader must then
/// assume: XADD's cost grows with the fields, and most requests have no cache, savings, flags or tags. A gateway
/// writes its entries in batches through a script that also records the batch's sequence number under
/// <see cref="UsageBatchSeqKey"/>, so a batch retried after an ambiguous failure (timeout) is not appended twice.</para>
/// <para><b>Quotas</b> (USD budgets of keys with <see cref="KeyFields.QuotaUsd"/>): per key id one hash
/// <see cref="QuotaKey(string)"/> with the integer fields <see cref="QuotaFields.SpentNanoUsd"/> (settled spend, never expires)
/// and <see cref="QuotaFields.ReservedNanoUsd"/> (worst-case cost of requests in flight), and a sorted set
/// <see cref="QuotaHoldsKey(string)"/> of those reservations, member <c>{reservation id}:{nano-USD}</c> scored by its expiry in
/// unix ms (a gateway that dies mid-request cannot pin quota forever: expired holds are released; no hold expires before
/// <see cref="QuotaFields.EarliestHoldExpiryMs"/>, so gateways look for expired ones only once it has passed). Amounts are
/// nano-USD (1e-9 USD) integers so Lua compares them exactly. Spend is tracked only while a key has a quota; Admin may
/// seed <see cref="QuotaFields.SpentNanoUsd"/> from its ledger when it sets or resets a quota (HSET; DEL resets it).</para>
/// <para><b>Teams and periods</b>: a key's team is copied into its hash (<see cref="KeyFields.TeamId"/> …), and a team's
/// quota and rate hashes are those of the scope <see cref="TeamScope"/>. A request of a key in a team reserves against
/// both in one script. A budget with a <see cref="KeyFields.BudgetDuration"/> keeps one quota hash per period
/// (<see cref="QuotaKey(string, long?)"/>), computed by <see cref="BudgetPeriods"/>; these hashes expire after their period.</para>
/// <para><b>Rate limits</b> (<see cref="KeyFields.RequestsPerMinute"/>, <see cref="KeyFields.TokensPerMinute"/>): per key
/// id one hash <see cref="RateKey"/> holding the current fixed one-minute window: <see cref="RateFields.Window"/> (unix
/// minute), <see cref="RateFields.Requests"/>, <see cref="RateFields.Tokens"/>; it expires two minutes after its last
/// change. Only gateways write quota and rate keys. The <c>{key id}</c> hash tag keeps one key's hashes in one cluster slot.</para>
/// <para><b>Dedup across replicas</b> (gateways only; Admin never reads these): per in-flight request FullHash (which
/// already includes the dedup scope) the leading replica holds <see cref="DedupOwnerKey"/> = its claim id (SET NX PX,
/// refreshed while the call runs, deleted at its end). It mirrors the provider's response into the stream
/// <see cref="DedupEventsKey"/> of that claim, entries with explicit ids <c>0-1</c>, <c>0-2</c>, … in order (a retried
/// write cannot duplicate one, a reader can see a gap), fields <see cref="DedupFields"/>, one of the
/// <see cref="DedupEntryTypes"/> each, and announces every write on <see cref="DedupWakeChannel"/>; the stream expires
/// <c>Dedup:Retention</c> after its last write. It mirrors only once a follower exists: until then it writes nothing, and
/// at the end it deletes its claim unless a follower registered meanwhile or is on its way (<see cref="DedupJoiningKey"/>):
/// then it writes the whole response at once.
/// Replicas relaying it register in the sorted set <see cref="DedupFollowersKey"/> (member follower id, score its deadline
/// in Redis-clock unix ms) and announce themselves on the leading replica's <see cref="DedupLeaderChannel"/>, so the
/// leader starts mirroring at once and keeps its call alive for them after its own clients left. A follower that takes
/// over from a dead leader records its claim under <see cref="DedupSuccessorKey"/> of the dead one. The <c>{FullHash}</c>
/// hash tag keeps one request's keys in one cluster slot.</para>
/// </remarks>
public static class RedisContract
{
    public const string ClientKeyPrefix = "sk-tr-";

    public const string ApiKeyPrefix = "tokenrouter:key:";
    public const string KeysChangedChannel = "tokenrouter:keys:changed";
    public const string UsageStream = "tokenrouter:usage";
    public const string UsageConsumerGroup = "tokenrouter-admin";

    /// <summary>Fields of the API-key hash. Numbers are invariant-culture text; absent means "no limit".</summary>
    public static class KeyFields
    {
        public const string Id = "id";
        public const string Name = "name";
        public const string QuotaUsd = "quota_usd";
        public const string Enabled = "enabled";              // "1" or "0"
        public const string ExpiresAtUnix = "expires_at";     // unix seconds, absent = never
        public const string RequestsPerMinute = "rpm_limit";
        public const string TokensPerMinute = "tpm_limit";
        public const string BudgetDuration = "budget_duration"; // BudgetDuration text; absent = the quota is for the key's lifetime
        public const string Models = "models";                  // comma-separated allowed models, "prefix*" patterns; absent = all

        // The key's team, copied into the key's hash by Admin (a team change republishes its keys), so a gateway learns
        // the key and its team in one read. Absent team_id = no team.
        public const string TeamId = "team_id";
        public const string TeamName = "team_name";
        public const string TeamBudgetUsd = "team_budget_usd";
        public const string TeamBudgetDuration = "team_budget_duration";
        public const string TeamRequestsPerMinute = "team_rpm_limit";
        public const string TeamTokensPerMinute = "team_tpm_limit";
        public const string TeamModels = "team_models";
    }

    public static string ApiKeyHashKey(string keyHashHex) => ApiKeyPrefix + keyHashHex;

    /// <summary>Fields of one <see cref="UsageStream"/> entry (one request).</summary>
    public static class UsageFields
    {
        public const string RequestId = "request_id";
        public const string KeyId = "key_id";
        public const string Model = "model";                          // the upstream model as routed
        public const string Provider = "provider";
        public const string PromptTokens = "prompt_tokens";           // all input, cached and cache writes included
        public const string CachedReadTokens = "cached_read_tokens";
        public const string CacheWrite5mTokens = "cache_write_5m_tokens";
        public const string CacheWrite1hTokens = "cache_write_1h_tokens";
        public const string CompletionTokens = "completion_tokens";
        public const string CostUsd = "cost_usd";                     // absent (or empty) when unpriced
        public const string CacheSavingsUsd = "cache_savings_usd";
        public const string DedupSavingsUsd = "dedup_savings_usd";
        public const string Unpriced = "unpriced";                    // "1" or "0"
        public const string Deduplicated = "deduplicated";            // "1" or "0"
        public const string Stream = "stream";                        // "1" or "0"
        public const string Status = "status";                        // HTTP status; 499 = the client left
        public const string LatencyMs = "latency_ms";                 // integer milliseconds
        public const string TimestampUnixMs = "ts";                   // unix milliseconds
        public const string Estimated = "estimated";                  // "1" when every client left mid-stream before the provider's usage arrived
        public const string Tags = "tags";                            // the request's tags, comma-separated; absent when none
        public const string EndUser = "end_user";                     // OpenAI `user` / Anthropic metadata.user_id; absent when none
    }

    /// <summary>Fields of the <see cref="QuotaKey(string)"/> hash: integer nano-USD, and one time in unix ms.</summary>
    public static class QuotaFields
    {
        public const string SpentNanoUsd = "spent";
        public const string ReservedNanoUsd = "reserved";

        /// <summary>No hold in the holds set expires before this; absent means unknown (the next admission sweeps).</summary>
        public const string EarliestHoldExpiryMs = "x";
    }

    /// <summary>Fields of the <see cref="RateKey"/> hash.</summary>
    public static class RateFields
    {
        public const string Window = "w";
        public const string Requests = "r";
        public const string Tokens = "t";
    }

    public const string QuotaPrefix = "tokenrouter:quota:";
    public const string RatePrefix = "tokenrouter:rate:";

    /// <summary><c>tokenrouter:quota:{keyId}</c>: settled spend and reserved amount of one key.</summary>
    public static string QuotaKey(string keyId) => QuotaPrefix + "{" + keyId + "}";

    /// <summary><c>tokenrouter:quota:{keyId}:holds</c>: the reservations in flight.</summary>
    public static string QuotaHoldsKey(string keyId) => QuotaPrefix + "{" + keyId + "}:holds";

    /// <summary>
    /// The quota hash of a budget scope (a key id, or <see cref="TeamScope"/> of a team) in one period:
    /// <c>tokenrouter:quota:{scope}</c> for a lifetime budget, <c>tokenrouter:quota:{scope}:p{period start, unix s}</c> for
    /// a periodic one. A new period is a new hash, so a budget resets with no job; old periods' hashes expire.
    /// </summary>
    public static string QuotaKey(string scopeId, long? periodStartUnixSeconds) => periodStartUnixSeconds is { } start
        ? QuotaPrefix + "{" + scopeId + "}:p" + start.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : QuotaKey(scopeId);

    /// <summary>The reservations in flight of <see cref="QuotaKey(string, long?)"/>.</summary>
    public static string QuotaHoldsKey(string scopeId, long? periodStartUnixSeconds) => periodStartUnixSeconds is { } start
        ? QuotaPrefix + "{" + scopeId + "}:p" + start.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":holds"
        : QuotaHoldsKey(scopeId);

    /// <summary>The scope id under which a team's quota and rate hashes live: <c>team-{teamId}</c>.</summary>
    public static string TeamScope(string teamId) => "team-" + teamId;

    /// <summary><c>tokenrouter:rate:{keyId}</c>: the key's current rate window.</summary>
    public static string RateKey(string keyId) => RatePrefix + "{" + keyId + "}";

    /// <summary><c>{tokenrouter:usage}:seq:{instance}</c>: last usage batch a gateway instance appended (same slot as the stream).</summary>
    public static string UsageBatchSeqKey(string instanceId) => "{" + UsageStream + "}:seq:" + instanceId;

    /// <summary>
    /// Price overrides edited in Admin: hash <c>tokenrouter:prices</c>, field = model name, value = JSON
    /// <c>{"input","cached_input","cache_write_5m","cache_write_1h","output"}</c> in USD per million tokens
    /// (invariant numbers). Admin publishes the model name on <see cref="PricesChangedChannel"/> after a change;
    /// gateways overlay these on their shipped list prices.
    /// </summary>
    public const string PricesHash = "tokenrouter:prices";
    public const string PricesChangedChannel = "tokenrouter:prices:changed";

    public static class PriceFields
    {
        public const string Input = "input";
        public const string CachedInput = "cached_input";
        public const string CacheWrite5m = "cache_write_5m";
        public const string CacheWrite1h = "cache_write_1h";
        public const string Output = "output";
    }

    /// <summary>
    /// The deployments gateways route to, as each replica last saw them (written by gateways, read by Admin's console):
    /// hash <c>tokenrouter:routing:deployments</c>, field = deployment id, value = a <see cref="PublishedDeployment"/> as
    /// JSON. Every replica rewrites its deployments every <see cref="DeploymentsPublishInterval"/> and sets the hash to
    /// expire after <see cref="DeploymentsRetention"/>; a field whose <see cref="PublishedDeployment.SeenAt"/> is older than
    /// that belongs to a deployment no running gateway has any more, and readers skip it. Never a key or a base URL.
    /// </summary>
    public const string DeploymentsHash = "tokenrouter:routing:deployments";

    public static readonly TimeSpan DeploymentsPublishInterval = TimeSpan.FromSeconds(10);

    /// <summary>Several missed publishes: long enough for a busy replica, short enough that a removed deployment leaves soon.</summary>
    public static readonly TimeSpan DeploymentsRetention = TimeSpan.FromSeconds(60);

    /// <summary>Values of <see cref="PublishedDeployment.Health"/>.</summary>
    public static class DeploymentHealthValues
    {
        public const string Healthy = "healthy";
        public const string Degraded = "degraded";          // failed lately, not (yet) taken out
        public const string CoolingDown = "cooling_down";   // taken out until cooldown_until
    }

    /// <summary>One deployment in <see cref="DeploymentsHash"/> (snake_case JSON; times are ISO 8601 UTC).</summary>
    /// <param name="Provider">The provider name (openai, anthropic, …).</param>
    /// <param name="Weight">Its share of new conversations.</param>
    /// <param name="CacheGroup">Deployments sharing one provider cache; null = its own.</param>
    /// <param name="Rpm">Its requests-per-minute limit, if configured.</param>
    /// <param name="Tpm">Its tokens-per-minute limit, if configured.</param>
    /// <param name="Health">One of <see cref="DeploymentHealthValues"/>.</param>
    /// <param name="CooldownUntil">While cooling down: until when.</param>
    /// <param name="ConsecutiveFailures">Failures since its last success.</param>
    /// <param name="LastFailure">Why it last failed (auth, rate_limited, server_error, …).</param>
    /// <param name="Replica">The gateway replica that wrote this entry.</param>
    /// <param name="SeenAt">When that replica wrote it.</param>
    /// <param name="MaxConcurrency">Its cap on upstream requests in flight, if configured.</param>
    public sealed record PublishedDeployment(
        [property: JsonPropertyName("provider")] string Provider,
        [property: JsonPropertyName("weight")] double Weight,
        [property: JsonPropertyName("cache_group")] string? CacheGroup,
        [property: JsonPropertyName("rpm")] int? Rpm,
        [property: JsonPropertyName("tpm")] int? Tpm,
        [property: JsonPropertyName("health")] string Health,
        [property: JsonPropertyName("cooldown_until")] DateTimeOffset? CooldownUntil,
        [property: JsonPropertyName("consecutive_failures")] int ConsecutiveFailures,
        [property: JsonPropertyName("last_failure")] string? LastFailure,
        [property: JsonPropertyName("replica")] string Replica,
        [property: JsonPropertyName("seen_at")] DateTimeOffset SeenAt,
        [property: JsonPropertyName("max_concurrency")] int? MaxConcurrency = null)
    {
        public string ToJson() => JsonSerializer.Serialize(this);

        /// <summary>Null when the value is not such an entry (another version's, say).</summary>
        public static PublishedDeployment? FromJson(string? json)
        {
            if (string.IsNullOrEmpty(json)) return null;
            try
            {
                var entry = JsonSerializer.Deserialize<PublishedDeployment>(json);
                return entry is { Provider: not null, Health: not null, Replica: not null } ? entry : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }

    public const string DedupPrefix = "tokenrouter:dedup:";

    /// <summary><c>tokenrouter:dedup:{fullHash}:owner</c>: the claim id of the replica leading the request.</summary>
    public static string DedupOwnerKey(string fullHash) => DedupPrefix + "{" + fullHash + "}:owner";

    /// <summary><c>tokenrouter:dedup:{fullHash}:events:{claimId}</c>: the leader's response, one stream per claim so a later
    /// claim of the same request never mixes with an earlier one's leftovers.</summary>
    public static string DedupEventsKey(string fullHash, string claimId) => DedupPrefix + "{" + fullHash + "}:events:" + claimId;

    /// <summary><c>tokenrouter:dedup:{fullHash}:followers:{claimId}</c>: replicas relaying that claim's response.</summary>
    public static string DedupFollowersKey(string fullHash, string claimId) => DedupPrefix + "{" + fullHash + "}:followers:" + claimId;

    /// <summary>Pub/sub channel <c>tokenrouter:dedup:{fullHash}:wake:{claimId}</c>: an empty message after every write to that
    /// claim's stream, so followers read at once instead of waiting for their next poll.</summary>
    public static string DedupWakeChannel(string fullHash, string claimId) => DedupPrefix + "{" + fullHash + "}:wake:" + claimId;

    /// <summary><c>tokenrouter:dedup:{fullHash}:joining</c>: set (for a lease) by every claim that finds the request already
    /// claimed, i.e. by a follower on its way; a leader ending a call nobody seemed to follow writes its response when it
    /// is there, since that follower may register only after the call ended.</summary>
    public static string DedupJoiningKey(string fullHash) => DedupPrefix + "{" + fullHash + "}:joining";

    /// <summary>Pub/sub channel <c>tokenrouter:dedup:leader:{replica}</c> of the replica that made <paramref name="claimId"/>
    /// (claim ids are <c>{replica}.{n}</c>): a follower publishes the claim id there when it registers, so that replica starts
    /// mirroring that claim's response.</summary>
    public static string DedupLeaderChannel(string claimId)
    {
        var dot = claimId.IndexOf('.', StringComparison.Ordinal);
        return DedupPrefix + "leader:" + (dot < 0 ? claimId : claimId[..dot]);
    }

    /// <summary><c>tokenrouter:dedup:{fullHash}:successor:{deadClaimId}</c>: the claim that took over from a dead leader, kept
    /// as long as its stream, so every replica that followed the dead one finds the same successor, even one that has ended.</summary>
    public static string DedupSuccessorKey(string fullHash, string deadClaimId) => DedupPrefix + "{" + fullHash + "}:successor:" + deadClaimId;

    /// <summary>Values of <see cref="DedupFields.Type"/>.</summary>
    public static class DedupEntryTypes
    {
        public const string Head = "head";    // status, content_type (absent when the provider sent none)
        public const string Chunk = "chunk";  // data: raw response bytes, in order
        public const string End = "end";      // the usage fields
        public const string Fail = "fail";    // status, error_type, message, code?, param?, the usage fields
        public const string Gone = "gone";    // the leader stopped (shut down) without an answer: followers take over
    }

    /// <summary>Fields of a <see cref="DedupEventsKey"/> entry. Numbers are invariant-culture integers.</summary>
    public static class DedupFields
    {
        public const string Type = "t";
        public const string Status = "status";
        public const string ContentType = "content_type";
        public const string Data = "data";
        public const string ErrorType = "error_type";
        public const string Message = "message";
        public const string Code = "code";
        public const string Param = "param";
        public const string PromptTokens = "prompt_tokens";
        public const string CachedReadTokens = "cached_read_tokens";
        public const string CacheWrite5mTokens = "cache_write_5m_tokens";
        public const string CacheWrite1hTokens = "cache_write_1h_tokens";
        public const string CompletionTokens = "completion_tokens";
    }

    /// <summary>
    /// <c>tokenrouter:toolorder:{conversation root}</c>: the tool names, newline-separated, in the order a conversation
    /// first used them (gateway-only; shared between replicas so a conversation keeps one order whichever replica serves it).
    /// </summary>
    public static string ToolOrderKey(UInt128 conversationRoot) => "tokenrouter:toolorder:" + conversationRoot.ToString("x32");

    /// <summary>Lower-case hex SHA-256 of a client key: what Admin stores and what the gateway looks up.</summary>
    public static string HashClientKey(string clientKey)
    {
        Span<char> hex = stackalloc char[ClientKeyHashLength];
        HashClientKey(clientKey, hex);
        return new string(hex);
    }

    /// <summary>Length of <see cref="HashClientKey(string)"/>'s result: 64 hex digits.</summary>
    public const int ClientKeyHashLength = 64;

    /// <summary><see cref="HashClientKey(string)"/> into <paramref name="hex"/> (<see cref="ClientKeyHashLength"/> chars), without allocating.</summary>
    public static void HashClientKey(ReadOnlySpan<char> clientKey, Span<char> hex)
    {
        Span<byte> hash = stackalloc byte[32];
        var max = Encoding.UTF8.GetMaxByteCount(clientKey.Length);
        var buffer = max <= 512 ? stackalloc byte[max] : new byte[max];
        var written = Encoding.UTF8.GetBytes(clientKey, buffer);
        SHA256.HashData(buffer[..written], hash);
        Convert.TryToHexStringLower(hash, hex, out _);
    }
}
