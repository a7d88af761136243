using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using TokenRouter.Simulator;

namespace TokenRouter.Tests.Simulator;

/// <summary>The simulator alone in a real Kestrel app on a loopback port, driven over real HTTP.</summary>
public sealed class SimulatorHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private SimulatorHost(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
        ApiKey = app.Services.GetRequiredService<IOptions<SimulatorOptions>>().Value.ApiKey!;
        Client = new HttpClient { BaseAddress = new Uri(baseUrl) };
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
    }

    public string BaseUrl { get; }

    /// <summary>The simulator's key (generated at start-up unless the settings give <c>Simulator:ApiKey</c>).</summary>
    public string ApiKey { get; }

    /// <summary>Sends the simulator's key on every request.</summary>
    public HttpClient Client { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<SimulatorHost> StartAsync(
        Dictionary<string, string?>? settings = null,
        Action<IServiceCollection>? configureServices = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        if (settings is not null)
            builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddSimulator(builder.Configuration);
        configureServices?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapSimulator();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new SimulatorHost(app, address.TrimEnd('/'));
    }

    public async Task<(int Status, JsonNode Body)> PostAsync(string path, string json, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        foreach (var (name, value) in headers)
            request.Headers.TryAddWithoutValidation(name, value);
        using var response = await Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonNode.Parse(text)!);
    }

    public Task<(int Status, JsonNode Body)> PostAsync(string path, JsonNode body, params (string Name, string Value)[] headers) =>
        PostAsync(path, body.ToJsonString(), headers);

    /// <summary>Posts a streaming request and returns its SSE events in order (event name or null, data).</summary>
    public async Task<List<(string? Event, string Data)>> StreamAsync(string path, JsonNode body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);

        var events = new List<(string? Event, string Data)>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? eventName = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                eventName = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((eventName, line["data: ".Length..]));
                eventName = null;
            }
            else
            {
                Assert.Equal("", line);
            }
        }

        return events;
    }

    public async Task<JsonNode> StatsAsync() => JsonNode.Parse(await Client.GetStringAsync("/sim/stats"))!;

    public async Task ResetAsync()
    {
        using var response = await Client.PostAsync("/sim/reset", null);
        response.EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A clock the test moves by hand, so cache expiry is tested without waiting.</summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

internal static class Json
{
    public static JsonNode Parse(string json) => JsonNode.Parse(json)!;

    /// <summary>ASCII filler of an exact byte length (bytes == chars), deterministic per seed.</summary>
    public static string Filler(int length, string seed = "lorem")
    {
        var sb = new StringBuilder(length);
        var i = 0;
        while (sb.Length < length)
            sb.Append(seed).Append(' ').Append(i++).Append(' ');
        return sb.ToString(0, length);
    }

    public static int Int(this JsonNode node, string path)
    {
        JsonNode? current = node;
        foreach (var part in path.Split('.'))
            current = int.TryParse(part, out var index) ? current![index] : current![part];
        return current!.GetValue<int>();
    }

    public static string? Str(this JsonNode node, string path)
    {
        JsonNode? current = node;
        foreach (var part in path.Split('.'))
            current = int.TryParse(part, out var index) ? current?[index] : current?[part];
        return current?.GetValueKind() == JsonValueKind.String ? current.GetValue<string>() : null;
    }
}
