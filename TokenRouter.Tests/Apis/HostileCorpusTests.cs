using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using TokenRouter.Tests.Infrastructure;
using Xunit.Sdk;

namespace TokenRouter.Tests.Apis;

/// <summary>One gateway and one fake provider for the whole corpus; the provider's base paths carry a prefix so that
/// any escape from them is visible.</summary>
public sealed class HostileCorpusFixture : IAsyncLifetime
{
    public const string OpenAIBase = "/openai/v1/";
    /// <summary>The Anthropic base URL is <c>/anthropic</c>, but every client path is under <c>/v1</c>, so every forwarded
    /// request must be under <c>/anthropic/v1/</c> (<c>/anthropic/stats</c> escaped the API root).</summary>
    public const string AnthropicBase = "/anthropic/v1/";
    public const string DeepSeekBase = "/deepseek/";

    public FakeProvider Provider { get; private set; } = null!;
    public GatewayFactory Gateway { get; private set; } = null!;
    public Uri Address { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Provider = await FakeProvider.StartAsync();
        var root = Provider.BaseUrl.ToString().TrimEnd('/');
        var settings = GatewayFactory.ProvidersAt(Provider);
        settings["Providers:OpenAI:BaseUrl"] = root + "/openai/v1";
        settings["Providers:Anthropic:BaseUrl"] = root + "/anthropic";
        settings["Providers:DeepSeek:BaseUrl"] = root + "/deepseek";
        settings["Gateway:MaxRequestBodyBytes"] = HostileCorpus.BodyLimit.ToString(CultureInfo.InvariantCulture);
        settings["Gateway:ProviderResponseTimeout"] = "00:00:05";
        Gateway = new GatewayFactory(settings);
        Address = Gateway.BaseAddress;
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Provider.DisposeAsync();
    }

    /// <summary>A healthy provider: a valid answer of the right kind for every path.</summary>
    public static Task Answer(RecordedRequest request, HttpContext context)
    {
        var path = request.Path;
        string? json = null;
        if (path.EndsWith("/embeddings", StringComparison.Ordinal))
            json = """{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}""";
        else if (path.EndsWith("/moderations", StringComparison.Ordinal))
            json = """{"id":"modr-1","model":"omni-moderation-latest","results":[{"flagged":false}]}""";
        else if (path.EndsWith("/count_tokens", StringComparison.Ordinal))
            json = """{"input_tokens":3}""";
        else if (path.EndsWith("/files", StringComparison.Ordinal))
            json = """{"object":"list","data":[],"has_more":false}""";
        else if (!path.EndsWith("/messages", StringComparison.Ordinal) && !path.EndsWith("/chat/completions", StringComparison.Ordinal))
            json = """{"object":"ok"}""";
        return json is null ? FakeResponses.Auto()(request, context) : FakeResponses.Error(200, json)(request, context);
    }
}

/// <summary>
/// The hostile-input corpus (<see cref="HostileCorpus"/>), each case sent as raw HTTP/1.1 over TCP (so paths and header
/// bytes arrive exactly as written) to the gateway, whose providers are a healthy fake. Every case must satisfy:
/// <list type="number">
/// <item>the gateway never answers 5xx;</item>
/// <item>every 4xx has a JSON body in the client's API error shape (OpenAI's, or Anthropic's for <c>/v1/messages…</c> and
/// requests with <c>x-api-key</c>/<c>anthropic-version</c>);</item>
/// <item>every request that reached the provider stayed under its provider's base path and carried the client key in
/// no header;</item>
/// <item>the case's own expectation (status, field named in the message, nothing forwarded, …).</item>
/// </list>
/// </summary>
public sealed class HostileCorpusTests(HostileCorpusFixture fixture) : IClassFixture<HostileCorpusFixture>
{
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(20);

    public static IEnumerable<object[]> Cases => HostileCorpus.Names;

    [Fact]
    public void Corpus_has_at_least_170_distinct_cases() => Assert.True(HostileCorpus.All.Count >= 170, $"only {HostileCorpus.All.Count} cases");

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Hostile(HostileCaseName name)
    {
        var c = HostileCorpus.All[name.Value];
        var provider = fixture.Provider;
        await provider.WaitForIdleAsync(TimeSpan.FromSeconds(10));
        provider.Reset();
        provider.Respond(HostileCorpusFixture.Answer);

        var response = await RawHttp.SendAsync(fixture.Address, c, CaseTimeout);
        try
        {
            await provider.WaitForIdleAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            // Reported below through the arrivals, if any.
        }
        if (c.Chunked) await Task.Delay(100); // an upload the gateway aborted may still be landing at the provider

        var failures = Check(c, response, provider);
        if (failures.Count > 0)
        {
            var message = new StringBuilder();
            message.Append(CultureInfo.InvariantCulture, $"Hostile case '{c.Name}' ({c.Method} {c.Target}): status {response.Status}");
            message.Append(CultureInfo.InvariantCulture, $", content-type '{response.Header("Content-Type")}', body {Shorten(response.BodyText)}").AppendLine();
            foreach (var failure in failures) message.Append("  - ").AppendLine(failure);
            var arrivals = provider.Arrivals;
            message.Append(CultureInfo.InvariantCulture, $"  upstream: {arrivals.Count} request(s), {provider.BodyBytesReceived} body bytes");
            foreach (var a in arrivals.Take(3)) message.Append(CultureInfo.InvariantCulture, $"; {a.Method} {a.RawTarget}");
            throw new XunitException(message.ToString());
        }
    }

    private static List<string> Check(HostileCase c, RawResponse response, FakeProvider provider)
    {
        var failures = new List<string>();
        if (response.Error is not null) failures.Add($"no complete HTTP response: {response.Error}");
        if (response.Status == 0) return failures;

        // 1. never 5xx
        if (response.Status >= 500) failures.Add($"5xx from the gateway ({response.Status}) although the provider is healthy");

        // 2. 4xx in the client's shape
        if (response.Status is >= 400 and < 500 && c.Method != "HEAD") failures.AddRange(ShapeFailures(c, response));

        // 3. nothing escaped the base path, no client key upstream
        var arrivals = provider.Arrivals;
        foreach (var a in arrivals) failures.AddRange(UpstreamFailures(c, a));
        if (provider.HandlerErrors.Count > 0) failures.Add($"the fake provider's responder threw: {provider.HandlerErrors[0].Message}");

        // 4. the case's own expectations
        if (c.Status is { } status && response.Status != status) failures.Add($"expected status {status}, got {response.Status}");
        if (c.ClientError && response.Status is < 400 or >= 500) failures.Add($"expected a 4xx, got {response.Status}");
        if (c.Success && response.Status is < 200 or >= 300) failures.Add($"expected a 2xx, got {response.Status}");
        if (c.Field is { } field)
        {
            var message = ErrorMessage(response.Body);
            if (message is null || !message.Contains(field, StringComparison.Ordinal))
                failures.Add($"expected the error message to name '{field}', got {(message is null ? "no message" : "'" + message + "'")}");
        }
        if (c.NothingUpstream && arrivals.Count > 0)
            failures.Add($"expected nothing to reach the provider, it got {arrivals.Count} request(s) ({arrivals[0].Method} {arrivals[0].RawTarget})");
        if (c.MaxUpstreamBodyBytes is { } max && provider.BodyBytesReceived >= max)
            failures.Add($"the provider received {provider.BodyBytesReceived} body bytes, the limit is {max}: the body must be refused before it is forwarded");
        if (c.UpstreamPath is { } path && !arrivals.Any(a => a.Path == path))
            failures.Add($"expected the provider to receive {path}, it got [{string.Join(", ", arrivals.Select(a => a.Path))}]");
        foreach (var header in c.ForbiddenUpstreamHeaders)
        {
            if (arrivals.Any(a => a.Headers.ContainsKey(header))) failures.Add($"header '{header}' reached the provider");
        }
        return failures;
    }

    private static IEnumerable<string> ShapeFailures(HostileCase c, RawResponse response)
    {
        var contentType = response.Header("Content-Type") ?? "";
        if (!contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            yield return $"4xx Content-Type is '{contentType}', expected application/json";

        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(response.Body);
            root = doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            root = default;
        }
        if (root.ValueKind != JsonValueKind.Object)
        {
            yield return $"4xx body is not a JSON object (expected the {(c.AnthropicClient ? "Anthropic" : "OpenAI")} error shape)";
            yield break;
        }

        if (c.AnthropicClient)
        {
            if (!root.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "error")
                yield return "Anthropic error shape: top-level \"type\" must be \"error\"";
            if (!root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
            {
                yield return "Anthropic error shape: no \"error\" object";
                yield break;
            }
            if (!error.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
                yield return "Anthropic error shape: error.type must be a string";
            if (!error.TryGetProperty("message", out var m) || m.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(m.GetString()))
                yield return "Anthropic error shape: error.message must be a non-empty string";
        }
        else
        {
            if (!root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
            {
                yield return "OpenAI error shape: no \"error\" object";
                yield break;
            }
            if (!error.TryGetProperty("message", out var m) || m.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(m.GetString()))
                yield return "OpenAI error shape: error.message must be a non-empty string";
            if (!error.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
                yield return "OpenAI error shape: error.type must be a string";
        }
    }

    private static IEnumerable<string> UpstreamFailures(HostileCase c, ArrivedRequest a)
    {
        var auth = a.Headers.GetValueOrDefault("Authorization") ?? "";
        var apiKey = a.Headers.GetValueOrDefault("x-api-key") ?? "";
        string? basePath = auth == "Bearer sk-upstream-openai" ? HostileCorpusFixture.OpenAIBase
            : apiKey == "sk-upstream-anthropic" ? HostileCorpusFixture.AnthropicBase
            : auth == "Bearer sk-upstream-deepseek" ? HostileCorpusFixture.DeepSeekBase
            : null;
        if (basePath is null)
        {
            yield return $"upstream {a.Method} {a.RawTarget} carries no known provider credential";
        }
        else
        {
            if (!a.Path.StartsWith(basePath, StringComparison.Ordinal))
                yield return $"upstream path escaped the base {basePath}: {a.Path} (raw {a.RawTarget})";
            else if (!a.RawTarget.StartsWith(basePath, StringComparison.Ordinal))
                yield return $"upstream raw target does not start with the base {basePath}: {a.RawTarget}";
            if (HasDotSegment(a.RawTarget))
                yield return $"upstream target has a dot segment once decoded: {a.RawTarget}";
        }
        foreach (var (name, value) in a.Headers)
        {
            if (value.Contains(GatewayFactory.ClientKey, StringComparison.Ordinal))
                yield return $"the client key reached the provider in header '{name}'";
        }
    }

    /// <summary>Whether any segment of the target's path is <c>.</c> or <c>..</c> after up to four rounds of
    /// percent-decoding (with <c>\</c> as a separator and overlong <c>%c0%ae</c> as a dot).</summary>
    private static bool HasDotSegment(string target)
    {
        var path = target.Split('?')[0];
        for (var round = 0; round < 5; round++)
        {
            var normalized = path.Replace("%c0%ae", ".", StringComparison.OrdinalIgnoreCase).Replace('\\', '/');
            if (normalized.Split('/').Any(s => s is "." or "..")) return true;
            var decoded = Uri.UnescapeDataString(normalized);
            if (decoded == path) return false;
            path = decoded;
        }
        return false;
    }

    private static string? ErrorMessage(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object
                   && e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String
                ? m.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Shorten(string text) =>
        text.Length == 0 ? "(empty)" : "'" + (text.Length > 400 ? text[..400] + "…" : text) + "'";
}

/// <summary>A parsed raw HTTP/1.1 response (status 0 when none arrived).</summary>
public sealed record RawResponse(int Status, IReadOnlyList<(string Name, string Value)> Headers, byte[] Body, string? Error)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;
}

/// <summary>Writes a request exactly as given over a fresh TCP connection (<c>Connection: close</c>) and reads the answer
/// to the end, while still writing (a server may answer before it has read the whole body).</summary>
public static class RawHttp
{
    public static async Task<RawResponse> SendAsync(Uri gateway, HostileCase c, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(gateway.Host, gateway.Port, cts.Token);
        var stream = tcp.GetStream();

        var head = new MemoryStream();
        void Line(string s) => head.Write(Encoding.ASCII.GetBytes(s + "\r\n"));
        Line($"{c.Method} {c.Target} HTTP/1.1");
        Line($"Host: {gateway.Host}:{gateway.Port}");
        foreach (var (name, value) in c.Headers)
        {
            head.Write(Encoding.ASCII.GetBytes(name + ": "));
            head.Write(value);
            head.Write("\r\n"u8);
        }
        Line("Connection: close");
        if (c.Body is not null)
        {
            Line(c.Chunked ? "Transfer-Encoding: chunked" : $"Content-Length: {c.Body.Length}");
        }
        Line("");

        var writing = Task.Run(async () =>
        {
            try
            {
                await stream.WriteAsync(head.ToArray(), cts.Token);
                if (c.Body is null) return;
                if (!c.Chunked)
                {
                    await stream.WriteAsync(c.Body, cts.Token);
                    return;
                }
                const int Piece = 8 * 1024;
                for (var offset = 0; offset < c.Body.Length; offset += Piece)
                {
                    var n = Math.Min(Piece, c.Body.Length - offset);
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(n.ToString("x", CultureInfo.InvariantCulture) + "\r\n"), cts.Token);
                    await stream.WriteAsync(c.Body.AsMemory(offset, n), cts.Token);
                    await stream.WriteAsync("\r\n"u8.ToArray(), cts.Token);
                }
                await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), cts.Token);
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The server answered and closed before taking the whole request: the answer is what matters.
            }
        });

        var received = new MemoryStream();
        string? error = null;
        var buffer = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0) received.Write(buffer, 0, n);
        }
        catch (OperationCanceledException)
        {
            error = $"timed out after {timeout.TotalSeconds:0} s";
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            if (received.Length == 0) error = "connection reset: " + ex.Message;
        }
        await writing;
        return Parse(received.ToArray(), c.Method == "HEAD", error);
    }

    private static RawResponse Parse(byte[] raw, bool head, string? error)
    {
        var end = raw.AsSpan().IndexOf("\r\n\r\n"u8);
        if (end < 0) return new RawResponse(0, [], [], error ?? $"no HTTP response head in {raw.Length} bytes");
        var lines = Encoding.Latin1.GetString(raw, 0, end).Split("\r\n");
        var statusParts = lines[0].Split(' ', 3);
        var status = statusParts.Length >= 2 && int.TryParse(statusParts[1], CultureInfo.InvariantCulture, out var s) ? s : 0;
        var headers = new List<(string, string)>();
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0) headers.Add((line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }
        var body = raw.AsSpan(end + 4).ToArray();
        if (head) body = [];
        else if (headers.Any(h => h.Item1.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && h.Item2.Contains("chunked", StringComparison.OrdinalIgnoreCase)))
            body = Dechunk(body);
        else if (headers.FirstOrDefault(h => h.Item1.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)).Item2 is { } length
                 && int.TryParse(length, CultureInfo.InvariantCulture, out var declared) && declared < body.Length)
            body = body[..declared];
        return new RawResponse(status, headers, body, error);
    }

    private static byte[] Dechunk(byte[] data)
    {
        var output = new MemoryStream();
        var position = 0;
        while (position < data.Length)
        {
            var lineEnd = data.AsSpan(position).IndexOf("\r\n"u8);
            if (lineEnd < 0) break;
            var sizeText = Encoding.ASCII.GetString(data, position, lineEnd).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var size) || size == 0) break;
            position += lineEnd + 2;
            var n = Math.Min(size, data.Length - position);
            output.Write(data, position, n);
            position += n + 2;
        }
        return output.ToArray();
    }
}
