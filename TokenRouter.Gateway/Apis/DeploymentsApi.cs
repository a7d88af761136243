using Microsoft.AspNetCore.Http.HttpResults;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;

namespace TokenRouter.Gateway.Apis;

/// <summary><c>GET /v1/tokenrouter/deployments</c>: each provider deployment this replica routes to and its health
/// (cooling down until when, and why), and its requests in flight where it has a concurrency cap. Ids only: never a key or a URL.</summary>
public static class DeploymentsApi
{
    public sealed record DeploymentEntry(string Id, string Provider, double Weight, string? CacheGroup, int? Rpm, int? Tpm, string Health,
        DateTimeOffset? CooldownUntil, int ConsecutiveFailures, string? LastFailure, int? MaxConcurrency, int InFlight);
    public sealed record DeploymentList(string Object, IReadOnlyList<DeploymentEntry> Data);

    public static RouteGroupBuilder MapDeploymentsApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/tokenrouter/deployments", List).WithName("ListDeployments");
        return v1;
    }

    private static Ok<DeploymentList> List(ModelRouter router, DeploymentHealth health, DeploymentConcurrencyLimiter concurrency)
    {
        var statuses = health.Snapshot().ToDictionary(s => s.Id, StringComparer.Ordinal);
        var data = new List<DeploymentEntry>();
        foreach (var provider in router.Providers.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            foreach (var d in provider.Deployments)
            {
                var s = statuses.GetValueOrDefault(d.Id);
                data.Add(new DeploymentEntry(d.Id, provider.Name, d.Info.Weight, d.Info.CacheGroup, d.Rpm, d.Tpm, s?.Health ?? "healthy",
                    s?.CooldownUntil, s?.ConsecutiveFailures ?? 0, s?.LastFailure, d.MaxConcurrency, concurrency.InFlight(d.Id)));
            }
        }
        return TypedResults.Ok(new DeploymentList("list", data));
    }
}
