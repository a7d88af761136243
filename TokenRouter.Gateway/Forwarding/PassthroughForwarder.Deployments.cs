using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>Which deployment a passthrough request goes to, and what its outcome tells their health.</summary>
public sealed partial class PassthroughForwarder
{
    /// <summary>The deployments in the order to try them: those not cooling down (nor at their cap) first, in rendezvous order by model (or
    /// path) and tenant; each outcome counts towards its deployment's health like a chat attempt's.</summary>
    private IReadOnlyList<ProviderDeployment> DeploymentOrder(ProviderEndpoint provider, string? affinity, string scope)
    {
        var set = provider.Current; // one snapshot: Admin may swap the provider's deployments meanwhile
        var deployments = set.Deployments;
        if (deployments.Count == 0) throw ApiError.NoDeployment(provider.Name);
        if (deployments.Count == 1) return deployments;
        var order = WeightedOrderBalancer.Order(scope, affinity, set.Infos,
            i => health.IsAvailable(deployments[i].Id) && !concurrency.IsSaturated(deployments[i].Id, deployments[i].MaxConcurrency));
        var ordered = new ProviderDeployment[order.Length];
        for (var i = 0; i < order.Length; i++) ordered[i] = deployments[order[i]];
        return ordered;
    }

    /// <summary>The position of the first deployment from <paramref name="from"/> on below its concurrency cap, with its
    /// slot (null without a cap); -1 when every one is at its cap.</summary>
    private int TakeSlot(IReadOnlyList<ProviderDeployment> order, int from, out ConcurrencySlot? slot)
    {
        for (var p = from; p < order.Count; p++)
        {
            var d = order[p];
            if (concurrency.TryAcquire(d.Provider.Name, d.Id, d.MaxConcurrency, out slot)) return p;
        }
        slot = null;
        return -1;
    }

    private void ReportHealth(PassthroughCall call)
    {
        var d = call.Deployment;
        if (call.Status is >= 200 and <= 299)
        {
            health.Succeeded(d.Id);
            metrics.DeploymentAttempt(call.Provider.Name, d.Id, DeploymentOutcome.Success);
        }
        else if (FailoverRules.KindOf(call.Status) is { } kind)
        {
            metrics.DeploymentAttempt(call.Provider.Name, d.Id, DeploymentOutcome.Failure);
            metrics.DeploymentFailed(call.Provider.Name, d.Id, FailoverRules.Label(kind));
            health.Failed(call.Provider.Name, d.Id, kind, call.ProviderError?.RetryAfterSeconds is { } s ? TimeSpan.FromSeconds(s) : null);
        }
    }
}
