using System.Text.Json;

namespace TokenRouter.Simulator;

internal enum SimFormat
{
    OpenAI,
    DeepSeek,
    Anthropic,
}

/// <summary>Upstream-call and token counters per wire format, as a provider would bill them.</summary>
internal sealed class SimulatorStats
{
    private readonly FormatCounters[] _formats = [new(), new(), new()];

    public void CountCall(SimFormat format, bool stream) => _formats[(int)format].CountCall(stream);

    public void CountError(SimFormat format) => Interlocked.Increment(ref _formats[(int)format].Errors);

    public void CountUsage(SimFormat format, in SimUsage usage) => _formats[(int)format].Add(usage);

    public long Calls(SimFormat format) => Volatile.Read(ref _formats[(int)format].Calls);

    public void Reset()
    {
        foreach (var f in _formats)
            f.Reset();
    }

    /// <summary>
    /// <c>{"total":n,"openai":n,"deepseek":n,"anthropic":n,"formats":{"openai":{calls,streams,errors,promptTokens,
    /// cacheReadTokens,cacheWrite5mTokens,cacheWrite1hTokens,outputTokens},…}}</c>; promptTokens includes cached reads and writes.
    /// </summary>
    public void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteNumber("total", Calls(SimFormat.OpenAI) + Calls(SimFormat.DeepSeek) + Calls(SimFormat.Anthropic));
        writer.WriteNumber("openai", Calls(SimFormat.OpenAI));
        writer.WriteNumber("deepseek", Calls(SimFormat.DeepSeek));
        writer.WriteNumber("anthropic", Calls(SimFormat.Anthropic));
        writer.WriteStartObject("formats");
        WriteFormat(writer, "openai", _formats[(int)SimFormat.OpenAI]);
        WriteFormat(writer, "deepseek", _formats[(int)SimFormat.DeepSeek]);
        WriteFormat(writer, "anthropic", _formats[(int)SimFormat.Anthropic]);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteFormat(Utf8JsonWriter writer, string name, FormatCounters c)
    {
        writer.WriteStartObject(name);
        writer.WriteNumber("calls", Volatile.Read(ref c.Calls));
        writer.WriteNumber("streams", Volatile.Read(ref c.Streams));
        writer.WriteNumber("errors", Volatile.Read(ref c.Errors));
        writer.WriteNumber("promptTokens", Volatile.Read(ref c.PromptTokens));
        writer.WriteNumber("cacheReadTokens", Volatile.Read(ref c.CacheReadTokens));
        writer.WriteNumber("cacheWrite5mTokens", Volatile.Read(ref c.CacheWrite5mTokens));
        writer.WriteNumber("cacheWrite1hTokens", Volatile.Read(ref c.CacheWrite1hTokens));
        writer.WriteNumber("outputTokens", Volatile.Read(ref c.OutputTokens));
        writer.WriteEndObject();
    }

    private sealed class FormatCounters
    {
        public long Calls;
        public long Streams;
        public long Errors;
        public long PromptTokens;
        public long CacheReadTokens;
        public long CacheWrite5mTokens;
        public long CacheWrite1hTokens;
        public long OutputTokens;

        public void CountCall(bool stream)
        {
            Interlocked.Increment(ref Calls);
            if (stream)
                Interlocked.Increment(ref Streams);
        }

        public void Add(in SimUsage u)
        {
            Interlocked.Add(ref PromptTokens, u.PromptTokens);
            Interlocked.Add(ref CacheReadTokens, u.CacheReadTokens);
            Interlocked.Add(ref CacheWrite5mTokens, u.CacheWrite5mTokens);
            Interlocked.Add(ref CacheWrite1hTokens, u.CacheWrite1hTokens);
            Interlocked.Add(ref OutputTokens, u.OutputTokens);
        }

        public void Reset()
        {
            Volatile.Write(ref Calls, 0);
            Volatile.Write(ref Streams, 0);
            Volatile.Write(ref Errors, 0);
            Volatile.Write(ref PromptTokens, 0);
            Volatile.Write(ref CacheReadTokens, 0);
            Volatile.Write(ref CacheWrite5mTokens, 0);
            Volatile.Write(ref CacheWrite1hTokens, 0);
            Volatile.Write(ref OutputTokens, 0);
        }
    }
}

/// <summary>Token usage of one simulated call. PromptTokens = uncached + CacheReadTokens + both write buckets.</summary>
internal readonly record struct SimUsage(
    int PromptTokens,
    int CacheReadTokens,
    int CacheWrite5mTokens,
    int CacheWrite1hTokens,
    int OutputTokens)
{
    public int UncachedInputTokens => PromptTokens - CacheReadTokens - CacheWrite5mTokens - CacheWrite1hTokens;
}
