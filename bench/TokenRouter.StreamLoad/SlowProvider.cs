using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace TokenRouter.StreamLoad;

/// <summary>
/// A slow OpenAI-compatible provider: every chat completion streams after <c>latencyMs</c>, <c>chunks</c> content
/// chunks <c>intervalMs</c> apart, each stamped with its send time (<c>ts:&lt;Stopwatch ticks&gt;</c>), then the usage
/// chunk and <c>[DONE]</c>. Holds no per-request state beyond the open response.
/// </summary>
internal static class SlowProvider
{
    private static long _calls;
    private static long _open;
    private static long _peak;

    public static async Task RunAsync(int port, int chunks, int intervalMs, int latencyMs)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenLocalhost(port, l => l.Protocols = HttpProtocols.Http1);
            k.Limits.MaxConcurrentConnections = null;
            k.Limits.MinResponseDataRate = null;
        });
        var app = builder.Build();
        app.MapGet("/stats", () => $"{Interlocked.Read(ref _calls)} {Interlocked.Read(ref _peak)}");
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            Interlocked.Increment(ref _calls);
            var now = Interlocked.Increment(ref _open);
            long seen;
            while ((seen = Interlocked.Read(ref _peak)) < now && Interlocked.CompareExchange(ref _peak, now, seen) != seen)
            {
            }
            try
            {
                await DrainAsync(context.Request.Body, context.RequestAborted);
                await Task.Delay(latencyMs, context.RequestAborted);
                context.Response.ContentType = "text/event-stream";
                context.Response.Headers.CacheControl = "no-cache";
                var output = context.Response.Body;
                using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(intervalMs));
                for (var i = 0; i < chunks; i++)
                {
                    if (i > 0) await timer.WaitForNextTickAsync(context.RequestAborted);
                    var delta = i == 0 ? "{\"role\":\"assistant\",\"content\":\"ts:" : "{\"content\":\"ts:";
                    await WriteAsync(output, Chunk(delta + Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture) + " \"}", "null"), context.RequestAborted);
                }
                await WriteAsync(output, Chunk("{}", "\"stop\""), context.RequestAborted);
                await WriteAsync(output,
                    "data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":"
                    + chunks.ToString(CultureInfo.InvariantCulture) + ",\"total_tokens\":" + (24 + chunks).ToString(CultureInfo.InvariantCulture) + "}}\n\ndata: [DONE]\n\n",
                    context.RequestAborted);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The gateway left.
            }
            finally
            {
                Interlocked.Decrement(ref _open);
            }
        });
        await app.RunAsync();
    }

    private static string Chunk(string delta, string finish) =>
        "data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":"
        + delta + ",\"logprobs\":null,\"finish_reason\":" + finish + "}],\"usage\":null}\n\n";

    private static async Task WriteAsync(Stream output, string text, CancellationToken cancel)
    {
        await output.WriteAsync(Encoding.UTF8.GetBytes(text), cancel);
        await output.FlushAsync(cancel);
    }

    private static async Task DrainAsync(Stream body, CancellationToken cancel)
    {
        var buffer = new byte[4096];
        while (await body.ReadAsync(buffer, cancel) > 0)
        {
        }
    }
}
