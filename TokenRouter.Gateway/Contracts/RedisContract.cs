using System.Security.Cryptography;
using System.Text;

namespace TokenRouter.Contracts;

/// <summary>
/// The whole contract between Admin (writer) and the Gateway (reader) in Redis. This one file is compiled into
/// both projects (Admin links it), so the two sides cannot drift; tests exercise both sides against a real Redis.
/// </summary>
/// <remarks>
/// <para><b>API keys</b>: one hash per client key at <c>tokenrouter:key:{sha256-hex of the key}</c> with the
/// fields below. Admin writes it on create/update and deletes it on revoke; Admin republishes every active key at
/// start-up, so a flushed Redis heals itself. After a change Admin publishes the hash id on
/// <see cref="KeysChangedChannel"/> so gateways can drop their local auth cache entry early.</para>
/// <para><b>Usage</b>: the gateway appends one entry per request to the stream <see cref="UsageStream"/>;
/// Admin drains it with the consumer group <see cref="UsageConsumerGroup"/> into Postgres, idempotently by request id.</para>
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
    }

    public static string ApiKeyHashKey(string keyHashHex) => ApiKeyPrefix + keyHashHex;

    /// <summary>Lower-case hex SHA-256 of a client key: what Admin stores and what the gateway looks up.</summary>
    public static string HashClientKey(string clientKey)
    {
        Span<byte> hash = stackalloc byte[32];
        var max = Encoding.UTF8.GetMaxByteCount(clientKey.Length);
        var buffer = max <= 512 ? stackalloc byte[max] : new byte[max];
        var written = Encoding.UTF8.GetBytes(clientKey, buffer);
        SHA256.HashData(buffer[..written], hash);
        return Convert.ToHexStringLower(hash);
    }
}
