using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Providers;

/// <summary>One upstream, configured the way its official SDK is: a base URL and a key.</summary>
public sealed class ProviderSettings
{
    public string? BaseUrl { get; set; }
    public string? ApiKey { get; set; }
}

/// <summary>Section <c>Providers</c>; <c>OPENAI_BASE_URL</c>, <c>OPENAI_API_KEY</c>, … are aliases.</summary>
public sealed class ProvidersOptions
{
    public const string SectionName = "Providers";

    public const string DefaultOpenAIBaseUrl = "https://api.openai.com/v1";
    public const string DefaultDeepSeekBaseUrl = "https://api.deepseek.com";
    public const string DefaultAnthropicBaseUrl = "https://api.anthropic.com";

    public ProviderSettings OpenAI { get; set; } = new();
    public ProviderSettings DeepSeek { get; set; } = new();
    public ProviderSettings Anthropic { get; set; } = new();

    /// <summary>The built-in simulator (models <c>sim-*</c>). On by default so a bare <c>dotnet run</c> works.</summary>
    public bool SimulatorEnabled { get; set; } = true;
    /// <summary>Where the gateway reaches the simulator; empty = this process's own first HTTP address.</summary>
    public string? SimulatorBaseUrl { get; set; }

    /// <summary>Extra routes: model-name prefix → provider name (openai, deepseek, anthropic, sim-openai, …). Checked before the defaults.</summary>
    public Dictionary<string, string> Routes { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

public sealed class ProvidersOptionsValidator : IValidateOptions<ProvidersOptions>
{
    public ValidateOptionsResult Validate(string? name, ProvidersOptions o)
    {
        var errors = new List<string>();
        Check("OpenAI (OPENAI_BASE_URL)", o.OpenAI.BaseUrl);
        Check("DeepSeek (DEEPSEEK_BASE_URL)", o.DeepSeek.BaseUrl);
        Check("Anthropic (ANTHROPIC_BASE_URL)", o.Anthropic.BaseUrl);
        Check("SimulatorBaseUrl", o.SimulatorBaseUrl);
        foreach (var (prefix, provider) in o.Routes)
        {
            if (!Providers.ModelRouter.IsKnownProviderName(provider))
                errors.Add($"Providers:Routes:{prefix} names an unknown provider '{provider}'.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);

        void Check(string what, string? url)
        {
            if (string.IsNullOrWhiteSpace(url)) return;
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                errors.Add($"Providers {what} must be an absolute http(s) URL, got '{url}'.");
        }
    }
}

/// <summary>Connection pooling to providers (section <c>Proxy</c>; <c>PROXY_*</c> aliases).</summary>
public sealed class ProxyOptions
{
    public const string SectionName = "Proxy";

    public int MaxConnectionsPerServer { get; set; } = 1024;
    public TimeSpan IdleConnectionTimeout { get; set; } = TimeSpan.FromSeconds(90);
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
