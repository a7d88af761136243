using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace TokenRouter.Simulator;

/// <summary>Request entry point shared by all simulator routes: test controls, parsing, dispatch, writing.</summary>
internal sealed class SimulatorHandler
{
    public const string LatencyHeader = "x-sim-latency-ms";
    public const string FailStatusHeader = "x-sim-fail-status";

    private readonly SimulatorOptions _options;
    private readonly SimulatorStats _stats;
    private readonly SimPrefixCache _cache;
    private readonly TimeProvider _time;
    private readonly OpenAIChatSimulator _openAI;
    private readonly AnthropicMessagesSimulator _anthropic;

    public SimulatorHandler(IOptions<SimulatorOptions> options, SimulatorStats stats, SimPrefixCache cache, TimeProvider time)
    {
        _options = options.Value;
        _stats = stats;
        _cache = cache;
        _time = time;
        _openAI = new OpenAIChatSimulator(cache, _options);
        _anthropic = new AnthropicMessagesSimulator(cache, _options);
    }

    public async Task HandleAsync(HttpContext context, SimFormat format)
    {
        var ct = context.RequestAborted;
        try
        {
            var latency = ReadIntHeader(context, LatencyHeader) ?? _options.LatencyMs;
            if (latency > 0)
                await Task.Delay(latency, ct);

            if (ReadIntHeader(context, FailStatusHeader) is { } status and >= 400 and <= 599)
            {
                _stats.CountCall(format, stream: false);
                _stats.CountError(format);
                await WriteErrorAsync(context, format, SimError.ForStatus(format, status), ct);
                return;
            }

            JsonDocument document;
            try
            {
                document = await JsonDocument.ParseAsync(context.Request.Body, default, ct);
            }
            catch (JsonException)
            {
                _stats.CountCall(format, stream: false);
                _stats.CountError(format);
                await WriteErrorAsync(context, format, SimError.MalformedJson(format), ct);
                return;
            }

            using (document)
            {
                var root = document.RootElement;
                var stream = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
                _stats.CountCall(format, stream);

                SimCompletion completion;
                try
                {
                    completion = format == SimFormat.Anthropic ? _anthropic.Process(root) : _openAI.Process(root, format);
                }
                catch (SimRequestException e)
                {
                    _stats.CountError(format);
                    await WriteErrorAsync(context, format, e.Error, ct);
                    return;
                }

                _stats.CountUsage(format, completion.Usage);
                await WriteCompletionAsync(context, format, completion, ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && ct.IsCancellationRequested)
        {
            // The client went away; nothing left to send.
        }
    }

    public async Task StatsAsync(HttpContext context)
    {
        await WriteJsonAsync(context, StatusCodes.Status200OK, _stats.WriteJson, context.RequestAborted);
    }

    public void Reset()
    {
        _cache.Clear();
        _stats.Reset();
    }

    private async Task WriteCompletionAsync(HttpContext context, SimFormat format, SimCompletion completion, CancellationToken ct)
    {
        var created = _time.GetUtcNow().ToUnixTimeSeconds();
        if (!completion.Stream)
        {
            if (format == SimFormat.Anthropic)
            {
                var id = AnthropicResponseWriter.NewId();
                await WriteJsonAsync(context, StatusCodes.Status200OK, w => AnthropicResponseWriter.WriteMessage(w, completion, id), ct);
            }
            else
            {
                var id = OpenAIResponseWriter.NewId(format);
                await WriteJsonAsync(context, StatusCodes.Status200OK, w => OpenAIResponseWriter.WriteCompletion(w, format, completion, id, created), ct);
            }

            return;
        }

        using var sse = new SimSseWriter(context.Response, _options.StreamChunkDelayMs, ct);
        if (format == SimFormat.Anthropic)
            await AnthropicResponseWriter.StreamAsync(sse, completion, AnthropicResponseWriter.NewId());
        else
            await OpenAIResponseWriter.StreamAsync(sse, format, completion, OpenAIResponseWriter.NewId(format), created);
    }

    private static Task WriteErrorAsync(HttpContext context, SimFormat format, SimError error, CancellationToken ct)
    {
        if (error.Status == StatusCodes.Status429TooManyRequests)
            context.Response.Headers.RetryAfter = "1";
        return WriteJsonAsync(context, error.Status, w => error.WriteTo(w, format), ct);
    }

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write, CancellationToken ct)
    {
        using var buffer = new SimBuffer(4096);
        using (var writer = new Utf8JsonWriter(buffer, SimPromptWriter.CompactJson))
        {
            write(writer);
        }

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, ct);
    }

    private static int? ReadIntHeader(HttpContext context, string name) =>
        context.Request.Headers.TryGetValue(name, out var values) &&
        int.TryParse(values.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : null;
}
