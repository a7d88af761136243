using System.Net.Http.Json;
using System.Text.Json.Nodes;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// OpenTelemetry collects every meter named <c>TokenRouter.Gateway</c> in the process, whichever host created it, so a
/// gateway's <c>/metrics</c> would also show what other gateways of this test run record at the same time. Tests that
/// assert exact values from a scrape therefore run in this collection, alone; they also use model names of their own.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideMetricsCollection
{
    public const string Name = "Process-wide gateway meters";
}

/// <summary>A gateway on real Kestrel in front of a <see cref="FakeProvider"/>, with helpers to drive it and scrape it.</summary>
internal sealed class MeteredGateway : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private MeteredGateway(FakeProvider provider, GatewayFactory gateway)
    {
        Provider = provider;
        Gateway = gateway;
        Client = gateway.CreateGatewayClient();
    }

    public FakeProvider Provider { get; }

    public GatewayFactory Gateway { get; }

    public HttpClient Client { get; }

    public static async Task<MeteredGateway> StartAsync(IDictionary<string, string?>? settings = null)
    {
        var provider = await FakeProvider.StartAsync();
        var all = GatewayFactory.ProvidersAt(provider);
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>()) all[key] = value;
        return new MeteredGateway(provider, new GatewayFactory(all));
    }

    /// <summary>A model name no other test uses, priced as gpt-4o (a dated variant takes its base model's price).</summary>
    public static string PricedAsGpt4o() => "gpt-4o-tr" + Guid.NewGuid().ToString("N")[..10];

    public static JsonObject Chat(string model, string text, bool stream = false) => new()
    {
        ["model"] = model,
        ["stream"] = stream,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }),
    };

    public Task<HttpResponseMessage> SendAsync(JsonObject body, HttpClient? client = null) =>
        (client ?? Client).PostAsJsonAsync("v1/chat/completions", body);

    public async Task<PrometheusScrape> ScrapeAsync()
    {
        using var plain = new HttpClient { BaseAddress = Gateway.BaseAddress, Timeout = Timeout };
        using var response = await plain.GetAsync("metrics");
        response.EnsureSuccessStatusCode();
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        return PrometheusScrape.Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Scrapes until <paramref name="condition"/> holds: a leader's usage is recorded just after its clients got their
    /// answer, and the in-flight gauge drops just after the response, so a scrape right after the last response may be
    /// a moment early. Throws with the last scrape when it never holds.
    /// </summary>
    public async Task<PrometheusScrape> ScrapeWhenAsync(Func<PrometheusScrape, bool> condition, string what)
    {
        using var deadline = new CancellationTokenSource(Timeout);
        while (true)
        {
            var scrape = await ScrapeAsync();
            if (condition(scrape)) return scrape;
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(25), deadline.Token);
            }
            catch (OperationCanceledException)
            {
                var tokenrouter = string.Join("\n", scrape.Samples.Where(s => s.Name.StartsWith("tokenrouter_", StringComparison.Ordinal)));
                throw new TimeoutException($"The gateway's /metrics never showed {what} within {Timeout}. Last scrape:\n{tokenrouter}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
        await Provider.DisposeAsync();
    }
}
