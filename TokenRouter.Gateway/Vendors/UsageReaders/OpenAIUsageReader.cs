using System.Text.Json;
using TokenRouter.Gateway.Accounting;

namespace TokenRouter.Gateway.Vendors.UsageReaders;

/// <summary>
/// OpenAI's usage and that of OpenAI-compatible providers: <c>prompt_tokens</c> is the whole input, the cached part
/// of it is <c>prompt_tokens_details.cached_tokens</c> or DeepSeek's <c>prompt_cache_hit_tokens</c>.
/// </summary>
public sealed class OpenAIUsageReader : UsageReader
{
    public static readonly OpenAIUsageReader Instance = new();

    private OpenAIUsageReader()
    {
    }

    public override Usage ReadUsage(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object) return default;
        var prompt = Int(usage, "prompt_tokens"u8);
        var completion = Int(usage, "completion_tokens"u8);
        var cached = 0;
        if (usage.TryGetProperty("prompt_tokens_details"u8, out var d) && d.ValueKind == JsonValueKind.Object)
            cached = Int(d, "cached_tokens"u8);
        // DeepSeek reports its disk cache separately; hit + miss = prompt.
        cached = Math.Max(cached, Int(usage, "prompt_cache_hit_tokens"u8));
        return new Usage(prompt, cached, 0, 0, completion);
    }

    /// <summary>
    /// Reads the Responses API's usage (<c>input_tokens</c>, <c>input_tokens_details.cached_tokens</c>,
    /// <c>output_tokens</c>); false, and empty usage, when the object is not in that shape (it has <c>prompt_tokens</c>
    /// or no <c>input_tokens</c>).
    /// </summary>
    public bool TryReadResponsesApi(JsonElement usage, out Usage read)
    {
        read = default;
        if (usage.ValueKind != JsonValueKind.Object || usage.TryGetProperty("prompt_tokens"u8, out _) || !usage.TryGetProperty("input_tokens"u8, out _))
            return false;
        var cached = usage.TryGetProperty("input_tokens_details"u8, out var details) && details.ValueKind == JsonValueKind.Object
            ? Int(details, "cached_tokens"u8)
            : 0;
        read = new Usage(Int(usage, "input_tokens"u8), cached, 0, 0, Int(usage, "output_tokens"u8));
        return true;
    }
}
