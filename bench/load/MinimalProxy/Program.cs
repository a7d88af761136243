// The leanest forwarding path worth comparing the gateway with (PLATFORM-NOTES "Benchmarks here"): Kestrel reads the
// body, JsonDocument parses it, Utf8JsonWriter re-serializes it, an HttpMessageInvoker over SocketsHttpHandler sends
// it, and the response is copied back with a flush per read. No telemetry, no DI services on the path, no logging.
//   UPSTREAM=http://127.0.0.1:18081/v1/chat/completions ASPNETCORE_URLS=http://127.0.0.1:18105 dotnet MinimalProxy.dll
using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var app = builder.Build();

var upstream = new Uri(Environment.GetEnvironmentVariable("UPSTREAM") ?? throw new InvalidOperationException("UPSTREAM is not set"));
var invoker = new HttpMessageInvoker(new SocketsHttpHandler
{
    UseProxy = false,
    AllowAutoRedirect = false,
    UseCookies = false,
    AutomaticDecompression = DecompressionMethods.None,
    MaxConnectionsPerServer = 1024,
});
var json = new MediaTypeHeaderValue("application/json");

app.MapPost("/v1/chat/completions", async (HttpContext context) =>
{
    var aborted = context.RequestAborted;
    var body = new ArrayBufferWriter<byte>(4096);
    var reader = context.Request.BodyReader;
    while (true)
    {
        var read = await reader.ReadAsync(aborted);
        foreach (var segment in read.Buffer) body.Write(segment.Span);
        reader.AdvanceTo(read.Buffer.End);
        if (read.IsCompleted) break;
    }

    var outbound = new ArrayBufferWriter<byte>(body.WrittenCount + 256);
    using (var document = JsonDocument.Parse(body.WrittenMemory))
    using (var writer = new Utf8JsonWriter(outbound))
    {
        document.WriteTo(writer);
    }

    using var request = new HttpRequestMessage(HttpMethod.Post, upstream) { Content = new ReadOnlyMemoryContent(outbound.WrittenMemory) };
    request.Content.Headers.ContentType = json;
    using var response = await invoker.SendAsync(request, aborted);
    context.Response.StatusCode = (int)response.StatusCode;
    if (response.Content.Headers.ContentType is { } type) context.Response.ContentType = type.ToString();
    await using var stream = await response.Content.ReadAsStreamAsync(aborted);
    var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
    try
    {
        int n;
        while ((n = await stream.ReadAsync(buffer, aborted)) > 0)
        {
            await context.Response.Body.WriteAsync(buffer.AsMemory(0, n), aborted);
            await context.Response.Body.FlushAsync(aborted);
        }
    }
    finally
    {
        ArrayPool<byte>.Shared.Return(buffer);
    }
});

app.Run();
