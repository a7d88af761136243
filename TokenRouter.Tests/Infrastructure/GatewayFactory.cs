using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// The gateway in-process on a real Kestrel port (providers and the simulator are reached over real HTTP), with
/// settings given as host settings so they are visible while the gateway composes its services.
/// </summary>
public sealed class GatewayFactory : WebApplicationFactory<ChatHandler>
{
    public const string ClientKey = "sk-tr-test-client-key-0123456789abcdef";
    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _configureServices;

    /// <param name="configureServices">Extra registrations (a capturing logger provider, say), applied after the gateway's.</param>
    public GatewayFactory(IDictionary<string, string?>? settings = null, Action<IServiceCollection>? configureServices = null)
    {
        _configureServices = configureServices;
        _settings = new(StringComparer.OrdinalIgnoreCase)
        {
            ["Gateway:ApiKeys"] = ClientKey,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (settings is not null)
        {
            foreach (var (k, v) in settings) _settings[k] = v;
        }
        // Listen() rather than UseKestrel(0): the port-rewriting overload races Kestrel's start (dotnet/aspnetcore#67714).
        UseKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
    }

    /// <summary>Settings for a gateway whose OpenAI, DeepSeek and Anthropic providers all point at <paramref name="provider"/>.</summary>
    public static Dictionary<string, string?> ProvidersAt(FakeProvider provider) => new()
    {
        ["Providers:OpenAI:BaseUrl"] = provider.OpenAIBaseUrl.ToString(),
        ["Providers:OpenAI:ApiKey"] = "sk-upstream-openai",
        ["Providers:DeepSeek:BaseUrl"] = provider.DeepSeekBaseUrl.ToString(),
        ["Providers:DeepSeek:ApiKey"] = "sk-upstream-deepseek",
        ["Providers:Anthropic:BaseUrl"] = provider.AnthropicBaseUrl.ToString(),
        ["Providers:Anthropic:ApiKey"] = "sk-upstream-anthropic",
    };

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        foreach (var (key, value) in _settings) builder.UseSetting(key, value);
        if (_configureServices is not null) builder.ConfigureServices(_configureServices);
    }

    /// <summary>The gateway's own address (starts the server on first use).</summary>
    public Uri BaseAddress
    {
        get
        {
            StartServer();
            var address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new Uri(address.Replace("[::]", "127.0.0.1").TrimEnd('/') + "/");
        }
    }

    /// <summary>A plain HTTP client for the gateway, with the test client key unless told otherwise.</summary>
    public HttpClient CreateGatewayClient(string? key = ClientKey)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) client.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return client;
    }

    public T Service<T>() where T : notnull => Services.GetRequiredService<T>();
}
