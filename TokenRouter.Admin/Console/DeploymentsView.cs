using StackExchange.Redis;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Console;

/// <summary>One provider deployment as the gateways last published it.</summary>
public sealed record DeploymentRow(string Id, RedisContract.PublishedDeployment Entry)
{
    public bool IsCoolingDown(DateTimeOffset now) =>
        Entry.Health == RedisContract.DeploymentHealthValues.CoolingDown && Entry.CooldownUntil is { } until && until > now;
}

/// <summary>What the console's Providers page shows: the deployments, or why there are none to show.</summary>
public sealed record DeploymentsSnapshot(IReadOnlyList<DeploymentRow> Rows, bool RedisUnavailable);

/// <summary>
/// Reads the deployments the gateways publish to Redis (<see cref="RedisContract.DeploymentsHash"/>): Admin does not know
/// the gateways' addresses, but shares their Redis. Entries older than <see cref="RedisContract.DeploymentsRetention"/>
/// belong to deployments no running gateway has any more and are left out.
/// </summary>
public sealed class DeploymentsView(IConnectionMultiplexer redis, TimeProvider time)
{
    public async Task<DeploymentsSnapshot> ReadAsync()
    {
        HashEntry[] fields;
        try
        {
            fields = await redis.GetDatabase().HashGetAllAsync(RedisContract.DeploymentsHash);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return new DeploymentsSnapshot([], RedisUnavailable: true);
        }

        var oldest = time.GetUtcNow() - RedisContract.DeploymentsRetention;
        var rows = new List<DeploymentRow>(fields.Length);
        foreach (var field in fields)
        {
            if (RedisContract.PublishedDeployment.FromJson(field.Value) is { } entry && entry.SeenAt >= oldest)
            {
                rows.Add(new DeploymentRow(field.Name!, entry));
            }
        }
        rows.Sort((a, b) => string.CompareOrdinal(a.Entry.Provider, b.Entry.Provider) is var byProvider and not 0
            ? byProvider
            : string.CompareOrdinal(a.Id, b.Id));
        return new DeploymentsSnapshot(rows, RedisUnavailable: false);
    }
}
