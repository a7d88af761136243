using System.Text.Json;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Vendors.UsageReaders;

/// <summary>
/// Anthropic's usage: <c>input_tokens</c> is only the uncached rest, cache reads and writes are counted apart. Cache
/// writes are split by TTL from <c>cache_creation</c>; without that breakdown (older responses) all writes count as
/// 5-minute writes.
/// </summary>
public sealed class AnthropicUsageReader : UsageReader
{
    public static readonly AnthropicUsageReader Instance = new();

    private AnthropicUsageReader()
    {
    }

    public override Usage ReadUsage(JsonElement usage)
    {
        var acc = new AnthropicUsageAccumulator();
        acc.Apply(usage);
        return acc.ToUsage();
    }
}

/// <summary>
/// Accumulates Anthropic usage objects. A stream reports usage in <c>message_start</c> and again, cumulatively, in
/// <c>message_delta</c>: each later non-zero value replaces the earlier one.
/// </summary>
internal struct AnthropicUsageAccumulator
{
    private int _input, _cacheRead, _write5m, _write1h, _writeTotal, _output;

    public void Apply(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object) return;
        Take(usage, "input_tokens"u8, ref _input);
        Take(usage, "cache_read_input_tokens"u8, ref _cacheRead);
        Take(usage, "cache_creation_input_tokens"u8, ref _writeTotal);
        Take(usage, "output_tokens"u8, ref _output);
        if (usage.TryGetProperty("cache_creation"u8, out var creation) && creation.ValueKind == JsonValueKind.Object)
        {
            Take(creation, "ephemeral_5m_input_tokens"u8, ref _write5m);
            Take(creation, "ephemeral_1h_input_tokens"u8, ref _write1h);
        }
    }

    public readonly Usage ToUsage()
    {
        // Writes the TTL breakdown does not account for (no cache_creation object) are 5-minute writes.
        var write5m = Math.Max(_write5m, _writeTotal - _write1h);
        return Usage.FromAnthropic(_input, _cacheRead, Math.Max(0, write5m), _write1h, _output);
    }

    private static void Take(JsonElement o, ReadOnlySpan<byte> name, ref int field)
    {
        if (o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i > 0) field = i;
    }
}
