using Microsoft.Extensions.Options;

namespace TokenRouter.Gateway.Providers;

/// <summary>One upstream, configured the way its official SDK is: a base URL and a key — or several keys
/// (comma-separated, one deployment each) and/or <see cref="Deployments"/>.</summary>
public sealed class ProviderSettings
{
    public string? BaseUrl { get; set; }
    /// <summary>One key, or a comma-separated list of keys (one deployment each, at <see cref="BaseUrl"/>).</summary>
    public string? ApiKey { get; set; }
    /// <summary>The fuller form: <c>Providers:&lt;name&gt;:Deployments:N:{Name,ApiKey,BaseUrl,Weight,CacheGroup,Rpm,Tpm,MaxConcurrency}</c>.</summary>
    public List<DeploymentSettings> Deployments { get; set; } = [];

    /// <summary>The keys of <see cref="ApiKey"/>, split and trimmed.</summary>
    public string[] Keys() =>
        string.IsNullOrWhiteSpace(ApiKey) ? [] : ApiKey.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>One key and base URL of a provider, with its share of new conversations and its own limits.</summary>
public sealed class DeploymentSettings
{
    /// <summary>Shown in metrics and the deployments endpoint; default: the provider and a short hash of the key.</summary>
    public string? Name { get; set; }
    public string? ApiKey { get; set; }
    /// <summary>Default: the provider's base URL.</summary>
    public string? BaseUrl { get; set; }
    public double Weight { get; set; } = 1;
    /// <summary>Deployments that share one provider cache (keys of one organisation).</summary>
    public string? CacheGroup { get; set; }
    public int? Rpm { get; set; }
    public int? Tpm { get; set; }
    /// <summary>Upstream requests in flight at once; at the cap the deployment is skipped like one at its RPM.</summary>
    public int? MaxConcurrency { get; set; }
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
        Deployments("OpenAI", o.OpenAI);
        Deployments("DeepSeek", o.DeepSeek);
        Deployments("Anthropic", o.Anthropic);
        foreach (var (prefix, provider) in o.Routes)
        {
            if (!Providers.ModelRouter.IsKnownProviderName(provider))
                errors.Add($"Providers:Routes:{prefix} names an unknown provider '{provider}'.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);

        void Deployments(string provider, ProviderSettings settings)
        {
            var ids = new HashSet<string>(StringComparer.Ordinal);
            var keys = settings.Keys();
            for (var i = 0; i < keys.Length; i++)
            {
                if (!ids.Add(ProviderDeployment.IdFor(provider.ToLowerInvariant(), null, keys[i], i)))
                    errors.Add($"Providers:{provider}:ApiKey lists the same key twice (key #{i + 1}).");
            }
            for (var i = 0; i < settings.Deployments.Count; i++)
            {
                var d = settings.Deployments[i];
                var at = $"Providers:{provider}:Deployments:{i}";
                if (string.IsNullOrWhiteSpace(d.ApiKey) && string.IsNullOrWhiteSpace(d.BaseUrl) && string.IsNullOrWhiteSpace(settings.BaseUrl))
                    errors.Add($"{at} needs an ApiKey or a BaseUrl.");
                Check($"{provider} ({at}:BaseUrl)", d.BaseUrl);
                if (!(d.Weight > 0) || double.IsInfinity(d.Weight)) errors.Add($"{at}:Weight must be a positive number, got {d.Weight}.");
                if (d.Rpm is < 1) errors.Add($"{at}:Rpm must be positive when set.");
                if (d.Tpm is < 1) errors.Add($"{at}:Tpm must be positive when set.");
                if (d.MaxConcurrency is < 1) errors.Add($"{at}:MaxConcurrency must be positive when set.");
                if (d.Name is { } name && (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
                    errors.Add($"{at}:Name must be 1-64 letters, digits, '-', '_' or '.'.");
                if (!ids.Add(ProviderDeployment.IdFor(provider.ToLowerInvariant(), d.Name, d.ApiKey, keys.Length + i)))
                    errors.Add($"{at} repeats the name or key of another {provider} deployment.");
            }
        }

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

    /// <summary>TCP (and TLS) connect to a provider (<c>UPSTREAM_CONNECT_TIMEOUT</c>, <c>PROXY_CONNECT_TIMEOUT</c>).</summary>
    public int MaxConnectionsPerServer { get; set; } = 1024;
    public TimeSpan IdleConnectionTimeout { get; set; } = TimeSpan.FromSeconds(90);
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
