using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Errors;
using TokenRouter.Simulator;

namespace TokenRouter.Gateway.Providers;

/// <summary>
/// Maps a model name to a provider: <c>gpt-*</c>, <c>o1*</c>, <c>o3*</c>, <c>o4*</c> → OpenAI; <c>deepseek-*</c> → DeepSeek;
/// <c>claude-*</c> → Anthropic; <c>sim-*</c> → the simulator; <c>provider/model</c> forces a provider; configured
/// routes come first. A provider without a deployment (configured, or added through Admin) is not routable.
/// </summary>
public sealed class ModelRouter
{
    public const string OpenAI = "openai";
    public const string DeepSeek = "deepseek";
    public const string Anthropic = "anthropic";
    public const string SimOpenAI = "sim-openai";
    public const string SimDeepSeek = "sim-deepseek";
    public const string SimAnthropic = "sim-anthropic";

    /// <summary>Models the simulator answers; listed by <c>/v1/models</c> whenever it is enabled.</summary>
    public static readonly string[] SimulatorModels = [SimOpenAI, SimDeepSeek, SimAnthropic];

    private static readonly (string Prefix, string Provider)[] DefaultRoutes =
    [
        ("gpt-", OpenAI), ("chatgpt-", OpenAI), ("o1", OpenAI), ("o3", OpenAI), ("o4", OpenAI),
        // OpenAI's other model families, for the passthrough endpoints (embeddings, moderations, audio, images).
        ("text-embedding-", OpenAI), ("omni-moderation-", OpenAI), ("text-moderation-", OpenAI), ("whisper-", OpenAI),
        ("tts-", OpenAI), ("dall-e-", OpenAI), ("davinci-", OpenAI), ("babbage-", OpenAI),
        ("deepseek-", DeepSeek),
        ("claude-", Anthropic),
        (SimAnthropic, SimAnthropic), (SimDeepSeek, SimDeepSeek), ("sim-", SimOpenAI),
    ];

    private readonly Dictionary<string, ProviderEndpoint> _providers;
    private readonly (string Prefix, string Provider)[] _routes;

    public ModelRouter(IOptions<ProvidersOptions> options, IOptions<SimulatorOptions> simulator)
    {
        var o = options.Value;
        _providers = new(StringComparer.OrdinalIgnoreCase);
        AddExternal(OpenAI, ProviderKind.OpenAI, o.OpenAI, ProvidersOptions.DefaultOpenAIBaseUrl);
        AddExternal(DeepSeek, ProviderKind.DeepSeek, o.DeepSeek, ProvidersOptions.DefaultDeepSeekBaseUrl);
        AddExternal(Anthropic, ProviderKind.Anthropic, o.Anthropic, ProvidersOptions.DefaultAnthropicBaseUrl);
        if (o.SimulatorEnabled)
        {
            Uri? simBase = string.IsNullOrWhiteSpace(o.SimulatorBaseUrl) ? null : new Uri(o.SimulatorBaseUrl.TrimEnd('/') + "/");
            // The simulator's key (configured, or generated at start-up by AddSimulator) goes upstream like a provider key.
            var simKey = simulator.Value.ApiKey;
            _providers[SimOpenAI] = new ProviderEndpoint { Name = SimOpenAI, Kind = ProviderKind.OpenAI, IsSimulator = true, BaseUri = Sim(simBase, "sim/openai/v1/"), ApiKey = simKey };
            _providers[SimDeepSeek] = new ProviderEndpoint { Name = SimDeepSeek, Kind = ProviderKind.DeepSeek, IsSimulator = true, BaseUri = Sim(simBase, "sim/deepseek/"), ApiKey = simKey };
            _providers[SimAnthropic] = new ProviderEndpoint { Name = SimAnthropic, Kind = ProviderKind.Anthropic, IsSimulator = true, BaseUri = Sim(simBase, "sim/anthropic/"), ApiKey = simKey };
        }

        var routes = new List<(string, string)>();
        foreach (var (prefix, provider) in o.Routes) routes.Add((prefix, provider));
        routes.Sort((a, b) => b.Item1.Length.CompareTo(a.Item1.Length));
        routes.AddRange(DefaultRoutes);
        _routes = [.. routes];

        static Uri? Sim(Uri? simBase, string path) => simBase is null ? null : new Uri(simBase, path);
    }

    private void AddExternal(string name, ProviderKind kind, ProviderSettings settings, string defaultBaseUrl)
    {
        // A key, or an explicit base URL (a local OpenAI-compatible server may need no key), makes a provider routable.
        var keys = settings.Keys();
        var baseUri = new Uri((string.IsNullOrWhiteSpace(settings.BaseUrl) ? defaultBaseUrl : settings.BaseUrl).TrimEnd('/') + "/");
        var deployments = new List<ProviderDeployment>();
        ProviderEndpoint endpoint = null!;
        endpoint = new ProviderEndpoint
        {
            Name = name,
            Kind = kind,
            BaseUri = baseUri,
            ApiKey = keys.FirstOrDefault() ?? settings.Deployments.FirstOrDefault()?.ApiKey,
            Deployments = deployments,
        };
        for (var i = 0; i < keys.Length; i++)
            deployments.Add(new ProviderDeployment(endpoint, ProviderDeployment.IdFor(name, null, keys[i], i), null, keys[i]));
        for (var i = 0; i < settings.Deployments.Count; i++)
        {
            var d = settings.Deployments[i];
            var own = string.IsNullOrWhiteSpace(d.BaseUrl) ? null : new Uri(d.BaseUrl.TrimEnd('/') + "/");
            var key = string.IsNullOrWhiteSpace(d.ApiKey) ? null : d.ApiKey.Trim();
            deployments.Add(new ProviderDeployment(endpoint, ProviderDeployment.IdFor(name, d.Name, key, keys.Length + i), own, key,
                d.Weight, string.IsNullOrWhiteSpace(d.CacheGroup) ? null : d.CacheGroup, d.Rpm, d.Tpm, d.MaxConcurrency));
        }
        // A base URL alone: one keyless deployment. Nothing at all: no deployment until Admin adds one (not routable till then).
        if (deployments.Count == 0 && !string.IsNullOrWhiteSpace(settings.BaseUrl)) deployments.Add(new ProviderDeployment(endpoint, name, null, null));
        _providers[name] = endpoint;
    }

    /// <summary>The providers that route now: those with at least one deployment (configured, or added through Admin).</summary>
    public IEnumerable<ProviderEndpoint> Providers => _providers.Values.Where(static p => p.Current.Deployments.Count > 0);

    /// <summary>openai, deepseek or anthropic (configured or not): where Admin-managed deployments go.</summary>
    public ProviderEndpoint? External(string name) =>
        !name.StartsWith("sim-", StringComparison.Ordinal) && _providers.TryGetValue(name, out var p) && !p.IsSimulator ? p : null;

    public static bool IsKnownProviderName(string name) =>
        name.ToLowerInvariant() is OpenAI or DeepSeek or Anthropic or SimOpenAI or SimDeepSeek or SimAnthropic;

    /// <summary>Sets the simulator's base address once the server knows where it listens.</summary>
    public void SetSimulatorBase(Uri selfBase)
    {
        foreach (var p in _providers.Values)
        {
            if (!p.IsSimulator || p.BaseUri is not null) continue;
            var path = p.Kind switch
            {
                ProviderKind.Anthropic => "sim/anthropic/",
                ProviderKind.DeepSeek => "sim/deepseek/",
                _ => "sim/openai/v1/",
            };
            p.BaseUri = new Uri(selfBase, path);
        }
    }

    public RouteTarget Resolve(string model)
    {
        var slash = model.IndexOf('/');
        if (slash > 0)
        {
            var forced = model[..slash];
            var rest = model[(slash + 1)..];
            if (forced.Equals("sim", StringComparison.OrdinalIgnoreCase) || forced.Equals("simulator", StringComparison.OrdinalIgnoreCase))
                forced = RouteByPrefix(rest) is { } p && p.StartsWith("sim-", StringComparison.Ordinal) ? p : SimOpenAI;
            if (IsKnownProviderName(forced)) return Target(forced, rest, model);
        }
        return RouteByPrefix(model) is { } provider ? Target(provider, model, model) : throw ApiError.ModelNotFound(model);
    }

    private string? RouteByPrefix(string model)
    {
        foreach (var (prefix, provider) in _routes)
        {
            if (model.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return provider;
        }
        return null;
    }

    private RouteTarget Target(string providerName, string upstreamModel, string requested)
    {
        if (_providers.TryGetValue(providerName, out var endpoint) && endpoint.Current.Deployments.Count > 0) return new RouteTarget(endpoint, upstreamModel);
        var hint = providerName.ToLowerInvariant() switch
        {
            OpenAI => "set OPENAI_API_KEY (and optionally OPENAI_BASE_URL) or add a deployment through Admin",
            DeepSeek => "set DEEPSEEK_API_KEY (and optionally DEEPSEEK_BASE_URL) or add a deployment through Admin",
            Anthropic => "set ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL) or add a deployment through Admin",
            _ => "enable the simulator (Providers:SimulatorEnabled)",
        };
        throw new ApiError(StatusCodes.Status400BadRequest, "invalid_request_error",
            $"The model '{requested}' routes to provider '{providerName}', which is not configured on this gateway: {hint}.",
            "provider_not_configured", "model");
    }
}
