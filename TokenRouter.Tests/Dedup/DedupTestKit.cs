using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Dedup;
using TokenRouter.Gateway.Forwarding;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Dedup;

/// <summary>One client's complete answer from the gateway.</summary>
internal sealed record GatewayReply(HttpStatusCode Status, string Body, HttpResponseHeaders Headers, string? ContentType)
{
    public string? Header(string name) => Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;
}

/// <summary>Request builders, waits and stream readers shared by the dedup tests.</summary>
internal static class DedupTestKit
{
    public static readonly TimeSpan Bounded = TimeSpan.FromSeconds(20);

    public static string OpenAIChat(string prompt, bool stream, string model = "gpt-4o", int? maxTokens = null, int? maxCompletionTokens = null) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["model"] = model,
            ["stream"] = stream,
            ["max_tokens"] = maxTokens,
            ["max_completion_tokens"] = maxCompletionTokens,
            ["messages"] = new[] { new { role = "user", content = prompt } },
        }.Where(p => p.Value is not null).ToDictionary());

    public static string AnthropicMessages(string prompt, bool stream, string model, int maxTokens) =>
        JsonSerializer.Serialize(new
        {
            model,
            max_tokens = maxTokens,
            stream,
            messages = new[] { new { role = "user", content = prompt } },
        });

    public static async Task<GatewayReply> PostAsync(HttpClient client, string path, string body, CancellationToken cancellationToken = default,
        params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        using var response = await client.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        return new GatewayReply(response.StatusCode, text, response.Headers, response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>The FullHash the gateway computes for <paramref name="body"/>: one answered request, read from its header.</summary>
    public static async Task<string> FullHashOfAsync(HttpClient client, string path, string body, params (string Name, string Value)[] headers)
    {
        var reply = await PostAsync(client, path, body, CancellationToken.None, headers);
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        return reply.Header(GatewayHeaders.FullHash) ?? throw new InvalidOperationException("no full-hash header");
    }

    /// <summary>Waits until <paramref name="count"/> clients listen to the exchange of <paramref name="hash"/> across the given replicas
    /// (a leader's cross-replica publisher listens too and is not counted).</summary>
    public static Task WaitForListenersAsync(string hash, int count, params GatewayFactory[] replicas) =>
        WaitUntilAsync(() => Listeners(hash, replicas) == count, () => $"expected {count} listeners of {hash}, got {Listeners(hash, replicas)}");

    /// <summary>Waits until the flight of <paramref name="hash"/> has ended in Redis. Its leader ends it after answering its own
    /// client, and an identical request sent before then joins the finished flight instead of calling the provider.</summary>
    public static Task WaitForFlightEndAsync(RedisServer redis, string hash) =>
        Eventually.TrueAsync(async () => await redis.SendCommandAsync(["EXISTS", RedisContract.DedupOwnerKey(hash)]) == ":0",
            $"the flight of {hash} to end in Redis", Bounded);

    public static int Listeners(string hash, params GatewayFactory[] replicas) =>
        replicas.Sum(r => r.Service<InflightRegistry>().ListenersOf(hash) - (r.Services.GetService(typeof(RedisDedupBroker)) is RedisDedupBroker b ? b.PublishingCount : 0));

    public static Task WaitUntilAsync(Func<bool> condition, Func<string> describe, TimeSpan? timeout = null) =>
        Eventually.TrueAsync(condition, describe, timeout ?? Bounded);

    /// <summary>The concatenated <c>choices[0].delta.content</c> of an OpenAI SSE body.</summary>
    public static string OpenAIStreamText(string sse)
    {
        var text = new StringBuilder();
        foreach (var data in SseData(sse))
        {
            if (data == "[DONE]") continue;
            using var doc = JsonDocument.Parse(data);
            if (doc.RootElement.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
                && content.ValueKind == JsonValueKind.String)
                text.Append(content.GetString());
        }
        return text.ToString();
    }

    /// <summary>The concatenated <c>text_delta</c> texts of an Anthropic SSE body.</summary>
    public static string AnthropicStreamText(string sse)
    {
        var text = new StringBuilder();
        foreach (var data in SseData(sse))
        {
            using var doc = JsonDocument.Parse(data);
            if (doc.RootElement.TryGetProperty("delta", out var delta) && delta.TryGetProperty("text", out var piece))
                text.Append(piece.GetString());
        }
        return text.ToString();
    }

    public static IEnumerable<string> SseData(string sse) =>
        sse.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]);

    /// <summary>
    /// An OpenAI stream in two parts: <paramref name="first"/> pieces of text at once, then — after <paramref name="release"/>
    /// completes — the rest, the finish chunk, the usage chunk and <c>[DONE]</c>. Lets a test act mid-stream without timing.
    /// </summary>
    public static Func<RecordedRequest, HttpContext, Task> TwoPartOpenAIStream(string[] first, string[] rest, Task release, int prompt, int completion) =>
        async (_, context) =>
        {
            await FakeResponses.StartEventStreamAsync(context);
            const string id = "chatcmpl-twopart";
            string Chunk(string delta, string? finish) =>
                $$"""{"id":"{{id}}","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{{delta}},"finish_reason":{{(finish is null ? "null" : $"\"{finish}\"")}}}],"usage":null}""";
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, Chunk("""{"role":"assistant","content":""}""", null)));
            foreach (var piece in first) await FakeResponses.WriteEventAsync(context, new SseEvent(null, Chunk(JsonSerializer.Serialize(new { content = piece }), null)));
            await release.WaitAsync(context.RequestAborted);
            foreach (var piece in rest) await FakeResponses.WriteEventAsync(context, new SseEvent(null, Chunk(JsonSerializer.Serialize(new { content = piece }), null)));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, Chunk("{}", "stop")));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null,
                $$$"""{"id":"{{{id}}}","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":{{{prompt}}},"completion_tokens":{{{completion}}},"total_tokens":{{{prompt + completion}}}}}"""));
            await FakeResponses.WriteEventAsync(context, new SseEvent(null, "[DONE]"));
        };

    /// <summary>Starts a streaming request and returns once its first body bytes arrived; the caller reads or abandons the rest.</summary>
    public static async Task<(HttpResponseMessage Response, Stream Body)> OpenStreamAsync(HttpClient client, string path, string body, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[1];
        Assert.Equal(1, await stream.ReadAsync(buffer, cancellationToken));
        return (response, stream);
    }
}
