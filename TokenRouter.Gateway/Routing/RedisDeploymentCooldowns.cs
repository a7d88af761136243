using System.Globalization;
using StackExchange.Redis;

namespace TokenRouter.Gateway.Routing;

/// <summary>
/// Shares cool-downs across replicas: a cool-down started here is written to <c>tokenrouter:routing:cooldown:{id}</c>
/// (expiring with it) and announced on a channel; announcements from other replicas, and the keys themselves at
/// start-up and every <see cref="RefreshInterval"/> (a missed message), feed <see cref="DeploymentHealth.ApplyShared"/>.
/// Requests never wait on Redis: they read <see cref="DeploymentHealth"/> only.
/// </summary>
public sealed partial class RedisDeploymentCooldowns(IConnectionMultiplexer redis, DeploymentHealth health, Func<IReadOnlyList<string>> currentIds,
    TimeProvider time, ILogger<RedisDeploymentCooldowns> logger) : BackgroundService
{
    public RedisDeploymentCooldowns(IConnectionMultiplexer redis, DeploymentHealth health, IReadOnlyList<string> deploymentIds,
        TimeProvider time, ILogger<RedisDeploymentCooldowns> logger)
        : this(redis, health, () => deploymentIds, time, logger)
    {
    }

    public const string KeyPrefix = "tokenrouter:routing:cooldown:";
    public static readonly RedisChannel Channel = RedisChannel.Literal("tokenrouter:routing:cooldowns");
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        health.CooledDown += Publish;
        try
        {
            var subscriber = redis.GetSubscriber();
            await subscriber.SubscribeAsync(Channel, (_, message) => Receive(message));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(ex.GetType().Name);
        }

        try
        {
            using var timer = new PeriodicTimer(RefreshInterval, time);
            do
            {
                await RefreshAsync();
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
        finally
        {
            health.CooledDown -= Publish;
        }
    }

    private async Task RefreshAsync()
    {
        var deploymentIds = currentIds();
        if (deploymentIds.Count == 0) return;
        try
        {
            var keys = new RedisKey[deploymentIds.Count];
            for (var i = 0; i < keys.Length; i++) keys[i] = KeyPrefix + deploymentIds[i];
            var values = await redis.GetDatabase().StringGetAsync(keys);
            for (var i = 0; i < values.Length; i++)
            {
                if (values[i].TryParse(out long until)) health.ApplyShared(deploymentIds[i], until);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(ex.GetType().Name);
        }
    }

    private void Receive(RedisValue message)
    {
        var text = (string?)message;
        var separator = text?.LastIndexOf('|') ?? -1;
        if (separator <= 0) return;
        if (long.TryParse(text.AsSpan(separator + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var until))
            health.ApplyShared(text![..separator], until);
    }

    private void Publish(string deploymentId, DateTimeOffset until)
    {
        var ttl = until - time.GetUtcNow();
        if (ttl <= TimeSpan.Zero) return;
        var untilMs = until.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        try
        {
            // Fire and forget: the failing request does not wait for Redis either.
            var db = redis.GetDatabase();
            db.StringSet(KeyPrefix + deploymentId, untilMs, ttl, flags: CommandFlags.FireAndForget);
            db.Publish(Channel, deploymentId + "|" + untilMs, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUnavailable(ex.GetType().Name);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sharing deployment cool-downs through Redis failed ({Error}); this replica keeps its own")]
    private partial void LogUnavailable(string error);
}
