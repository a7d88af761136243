using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;
using StackExchange.Redis;
using TokenRouter.Contracts;
using TokenRouter.Gateway.Routing;

namespace TokenRouter.Gateway.Providers;

/// <summary>
/// Adds the provider deployments Admin manages to the configured ones, live: reads
/// <see cref="ProviderDeploymentContract.Hash"/> at start-up, whenever Admin announces a change and every
/// <see cref="ProviderDeploymentContract.ResyncInterval"/>, decrypts each key with the Data Protection key ring shared with
/// Admin, and swaps each provider's immutable deployment snapshot (<see cref="ProviderEndpoint.SetManaged"/>). Requests
/// never wait on it; a disabled or deleted deployment is simply absent from the next snapshot. If Redis cannot be read,
/// the last snapshot stays.
/// </summary>
public sealed partial class RedisProviderDeployments(IConnectionMultiplexer redis, ModelRouter router, IDataProtectionProvider protection,
    DeploymentHealth health, TimeProvider time, ILogger<RedisProviderDeployments> logger) : BackgroundService
{
    private readonly IDataProtector _protector = protection.CreateProtector(ProviderDeploymentContract.KeyPurpose);
    private readonly SemaphoreSlim _reload = new(1, 1);
    private readonly RedisChannel _channel = RedisChannel.Literal(ProviderDeploymentContract.ChangedChannel);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await redis.GetSubscriber().SubscribeAsync(_channel, (_, _) => _ = ReloadAsync());
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(ex.GetType().Name); // the periodic resync still brings changes, one interval late
        }
        try
        {
            using var timer = new PeriodicTimer(ProviderDeploymentContract.ResyncInterval, time);
            do
            {
                await ReloadAsync();
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await redis.GetSubscriber().UnsubscribeAsync(_channel);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Going away anyway.
        }
        await base.StopAsync(cancellationToken);
    }

    /// <summary>Reads the whole hash and swaps every external provider's Admin-managed deployments. Returns how many are enabled.</summary>
    public async Task<int> ReloadAsync()
    {
        await _reload.WaitAsync();
        try
        {
            HashEntry[] entries;
            try
            {
                entries = await redis.GetDatabase().HashGetAllAsync(ProviderDeploymentContract.Hash);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                LogUnavailable(ex.GetType().Name);
                return -1;
            }

            var managed = new Dictionary<string, List<ProviderDeployment>>(StringComparer.Ordinal);
            foreach (var name in ProviderDeploymentContract.Providers) managed[name] = [];
            foreach (var field in entries)
            {
                if (ProviderDeploymentContract.Entry.FromJson(field.Value.ToString()) is not { Enabled: true } entry) continue;
                if (router.External(entry.Provider) is not { } endpoint || !managed.TryGetValue(endpoint.Name, out var list)) continue;
                if (endpoint.Configured.Any(d => d.Id == entry.Id)) continue; // a configured deployment of that id wins
                if (Deployment(endpoint, entry) is not { } deployment) continue;
                health.Register(endpoint.Name, deployment.Id);
                list.Add(deployment);
            }
            var count = 0;
            foreach (var (name, list) in managed)
            {
                if (router.External(name) is not { } endpoint) continue;
                endpoint.SetManaged(list);
                count += list.Count;
            }
            LogLoaded(count);
            return count;
        }
        finally
        {
            _reload.Release();
        }
    }

    private ProviderDeployment? Deployment(ProviderEndpoint endpoint, ProviderDeploymentContract.Entry entry)
    {
        string? key = null;
        if (entry.ProtectedKey is { Length: > 0 } protectedKey)
        {
            try
            {
                key = _protector.Unprotect(protectedKey);
            }
            catch (CryptographicException)
            {
                // Not this key ring's (another Data Protection application name, or a lost ring): never sent keyless.
                LogUndecryptable(entry.Id);
                return null;
            }
        }
        Uri? baseUri = null;
        if (!string.IsNullOrWhiteSpace(entry.BaseUrl)
            && (!Uri.TryCreate(entry.BaseUrl.TrimEnd('/') + "/", UriKind.Absolute, out baseUri) || baseUri.Scheme is not ("http" or "https")))
        {
            return null;
        }
        return new ProviderDeployment(endpoint, entry.Id, baseUri, key, entry.Weight, entry.CacheGroup, entry.Rpm, entry.Tpm,
            entry.MaxConcurrency is > 0 ? entry.MaxConcurrency : null);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Admin-managed provider deployments: {Count} enabled")]
    private partial void LogLoaded(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading Admin-managed provider deployments from Redis failed ({Error}); keeping the last ones")]
    private partial void LogUnavailable(string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "The key of deployment {Deployment} cannot be decrypted: is the Data Protection key ring shared with Admin (same Redis, same application name)?")]
    private partial void LogUndecryptable(string deployment);
}
