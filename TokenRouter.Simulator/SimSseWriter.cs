using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;

namespace TokenRouter.Simulator;

/// <summary>Writes server-sent events straight into the response pipe and flushes each one.</summary>
internal sealed class SimSseWriter : IDisposable
{
    private readonly PipeWriter _pipe;
    private readonly Utf8JsonWriter _json;
    private readonly int _delayMs;
    private readonly CancellationToken _cancellationToken;

    public SimSseWriter(HttpResponse response, int delayMs, CancellationToken cancellationToken)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        _pipe = response.BodyWriter;
        _json = new Utf8JsonWriter(_pipe, SimPromptWriter.CompactJson);
        _delayMs = delayMs;
        _cancellationToken = cancellationToken;
    }

    /// <summary>The JSON writer of the event being written.</summary>
    public Utf8JsonWriter Json => _json;

    /// <summary>Starts an event (<c>event: name</c> when given, then <c>data: </c>) and returns the writer for its JSON.</summary>
    public Utf8JsonWriter Begin(string? eventName = null)
    {
        if (eventName is not null)
        {
            _pipe.Write("event: "u8);
            Encoding.UTF8.GetBytes(eventName, _pipe);
            _pipe.Write("\n"u8);
        }

        _pipe.Write("data: "u8);
        _json.Reset(_pipe);
        return _json;
    }

    /// <summary>Ends the event, flushes it to the client and waits the configured inter-chunk delay unless last.</summary>
    public async ValueTask EndAsync(bool last = false)
    {
        _json.Flush();
        _pipe.Write("\n\n"u8);
        await _pipe.FlushAsync(_cancellationToken);
        if (!last && _delayMs > 0)
            await Task.Delay(_delayMs, _cancellationToken);
    }

    public async ValueTask WriteDoneAsync()
    {
        _pipe.Write("data: [DONE]\n\n"u8);
        await _pipe.FlushAsync(_cancellationToken);
    }

    public void Dispose() => _json.Dispose();
}
