using StackExchange.Redis;
using TokenRouter.Contracts;

namespace TokenRouter.Gateway.Routing;

/// <summary>A deployment as this replica is configured with it: what operators may see, never its key or base URL.</summary>
public sealed record DeploymentDescription(string Id, string Provider, double Weight, string? CacheGroup, int? Rpm, int? Tpm,
    int? MaxConcurrency = null);

/// <summary>
/// Publishes this replica's deployments and their health to <see cref="RedisContract.DeploymentsHash"/> at start-up and
/// every <see cref="RedisContract.DeploymentsPublishInterval"/>, so Admin's console can show them without knowing where
/// the gateways are. A background task: requests never wait on it, and a Redis outage only skips a publish.
/// </summary>
public sealed partial class RedisDeploymentPublisher(IConnectionMultiplexer redis, DeploymentHealth health,
    Func<IReadOnlyList<DeploymentDescription>> current, TimeProvider time, ILogger<RedisDeploymentPublisher> logger) : BackgroundService
{
    public RedisDeploymentPublisher(IConnectionMultiplexer redis, DeploymentHealth health, IReadOnlyList<DeploymentDescription> deployments,
        TimeProvider time, ILogger<RedisDeploymentPublisher> logger)
        : this(redis, health, () => deployments, time, logger)
    {
    }

    /// <summary>Names this process in the entries it writes (host and process id).</summary>
    public string Replica { get; init; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            using var timer = new PeriodicTimer(RedisContract.DeploymentsPublishInterval, time);
            do
            {
                await PublishAsync();
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the entries expire on their own.
        }
    }

    /// <summary>Writes every deployment's current health once and refreshes the hash's expiry.</summary>
    public async Task PublishAsync()
    {
        // The deployments as they are now (Admin may have added or removed some since the last publish).
        var deployments = current();
        if (deployments.Count == 0) return;
        var statuses = health.Snapshot().ToDictionary(s => s.Id, StringComparer.Ordinal);
        var now = time.GetUtcNow();
        var fields = new HashEntry[deployments.Count];
        for (var i = 0; i < fields.Length; i++)
        {
            var d = deployments[i];
            var s = statuses.GetValueOrDefault(d.Id);
            var entry = new RedisContract.PublishedDeployment(d.Provider, d.Weight, d.CacheGroup, d.Rpm, d.Tpm,
                s?.Health ?? RedisContract.DeploymentHealthValues.Healthy, s?.CooldownUntil, s?.ConsecutiveFailures ?? 0, s?.LastFailure,
                Replica, now, d.MaxConcurrency);
            fields[i] = new HashEntry(d.Id, entry.ToJson());
        }
        try
        {
            var batch = redis.GetDatabase().CreateBatch();
            var set = batch.HashSetAsync(RedisContract.DeploymentsHash, fields);
            var expire = batch.KeyExpireAsync(RedisContract.DeploymentsHash, RedisContract.DeploymentsRetention);
            batch.Execute();
            await Task.WhenAll(set, expire).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(ex.GetType().Name);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing the deployments' health to Redis failed ({Error}); the console shows them again after the next publish")]
    private partial void LogUnavailable(string error);
}
