using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Routing;

namespace TokenRouter.Gateway.Providers;

public enum ProviderKind
{
    OpenAI,
    DeepSeek,
    Anthropic,
}

/// <summary>A configured upstream: where it is, what it speaks, and how to authenticate to it.</summary>
public sealed class ProviderEndpoint
{
    private IReadOnlyList<ProviderDeployment>? _configured;
    private DeploymentSet? _current;

    public required string Name { get; init; }
    public required ProviderKind Kind { get; init; }
    /// <summary>Base URL as the official SDKs take it (OpenAI's includes <c>/v1</c>, Anthropic's does not).
    /// Null for the simulator until the gateway knows its own address. The first deployment's when there are several.</summary>
    public Uri? BaseUri { get; set; }
    /// <summary>The first deployment's key (passthrough and single-key setups).</summary>
    public string? ApiKey { get; init; }
    public bool IsSimulator { get; init; }

    /// <summary>The deployments from configuration, in configuration order. Defaults to one deployment made of
    /// <see cref="BaseUri"/> and <see cref="ApiKey"/>; empty for a provider only Admin gives deployments to.</summary>
    public IReadOnlyList<ProviderDeployment> Configured =>
        _configured ??= [new ProviderDeployment(this, ProviderDeployment.IdFor(Name, null, ApiKey, 0), ownBaseUri: null, ApiKey)];

    /// <summary>Where requests for this provider can go right now: the configured deployments, then the enabled ones Admin
    /// manages. An immutable snapshot, swapped whole (<see cref="SetManaged"/>): a request reads it once and keeps it, so
    /// its order indexes never point into another snapshot.</summary>
    public DeploymentSet Current
    {
        get
        {
            var current = Volatile.Read(ref _current);
            if (current is not null) return current;
            Interlocked.CompareExchange(ref _current, new DeploymentSet(Configured), null);
            return _current!;
        }
    }

    /// <summary><see cref="Current"/>'s deployments (read <see cref="Current"/> once when indexes must stay valid).
    /// Initialising it sets <see cref="Configured"/>.</summary>
    public IReadOnlyList<ProviderDeployment> Deployments
    {
        get => Current.Deployments;
        init => _configured = value;
    }

    /// <summary>What the balancer sees of <see cref="Deployments"/> (same order), no keys.</summary>
    public IReadOnlyList<DeploymentInfo> DeploymentInfos => Current.Infos;

    /// <summary>Replaces the Admin-managed deployments (configured ones stay first). One writer; readers never lock.</summary>
    public void SetManaged(IReadOnlyList<ProviderDeployment> managed) =>
        Volatile.Write(ref _current, new DeploymentSet(managed.Count == 0 ? Configured : [.. Configured, .. managed]));

    public ApiFormat WireFormat => Kind == ProviderKind.Anthropic ? ApiFormat.Anthropic : ApiFormat.OpenAI;

    public override string ToString() => Name;
}

/// <summary>One snapshot of a provider's deployments and what the balancer sees of them (same order).</summary>
public sealed class DeploymentSet(IReadOnlyList<ProviderDeployment> deployments)
{
    public IReadOnlyList<ProviderDeployment> Deployments { get; } = deployments;
    public IReadOnlyList<DeploymentInfo> Infos { get; } = [.. deployments.Select(d => d.Info)];
}

/// <summary>One key (and base URL) of a provider. <see cref="Id"/> is safe to show; the key never is.</summary>
public sealed class ProviderDeployment(ProviderEndpoint provider, string id, Uri? ownBaseUri, string? apiKey,
    double weight = 1, string? cacheGroup = null, int? rpm = null, int? tpm = null, int? maxConcurrency = null)
{
    public ProviderEndpoint Provider { get; } = provider;
    public string Id { get; } = id;
    /// <summary>Its own base URL, else the provider's (the simulator's is only known once the gateway listens).</summary>
    public Uri? BaseUri => ownBaseUri ?? Provider.BaseUri;
    public string? ApiKey { get; } = apiKey;
    public int? Rpm { get; } = rpm;
    public int? Tpm { get; } = tpm;
    /// <summary>Upstream requests in flight at once (<see cref="DeploymentConcurrencyLimiter"/>); null = no cap.</summary>
    public int? MaxConcurrency { get; } = maxConcurrency;
    public DeploymentInfo Info { get; } = new(id, weight, cacheGroup);

    private sealed record ResolvedUri(Uri Base, string Path, Uri Target);
    private ResolvedUri? _resolved;

    /// <summary><paramref name="path"/> under <see cref="BaseUri"/>, built once for the path a provider's requests use
    /// (parsing a <see cref="Uri"/> cost ~1 µs of every request).</summary>
    public Uri Resolve(string path)
    {
        var baseUri = BaseUri!;
        var last = _resolved;
        if (last is not null && ReferenceEquals(last.Base, baseUri) && ReferenceEquals(last.Path, path)) return last.Target;
        var target = new Uri(baseUri, path);
        _resolved = new ResolvedUri(baseUri, path, target);
        return target;
    }

    /// <summary>The configured name, else the provider and a short hash of the key (never the key itself), else its position.</summary>
    public static string IdFor(string provider, string? name, string? apiKey, int index)
    {
        if (!string.IsNullOrWhiteSpace(name)) return name.Trim();
        if (string.IsNullOrEmpty(apiKey)) return index == 0 ? provider : $"{provider}-{index}";
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(apiKey), hash);
        return $"{provider}-{Convert.ToHexStringLower(hash[..4])}";
    }

    public override string ToString() => Id;
}

/// <summary>Where a request goes: a provider and the model name it knows.</summary>
public readonly record struct RouteTarget(ProviderEndpoint Provider, string UpstreamModel);
