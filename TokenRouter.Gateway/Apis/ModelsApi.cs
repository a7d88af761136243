using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;

namespace TokenRouter.Gateway.Apis;

/// <summary>OpenAI-compatible <c>GET /v1/models</c>: every routable model — the priced models of each configured
/// provider and the simulator's <c>sim-*</c> models, limited to the key's and its team's allowed models, then the model
/// groups (<c>Routing:ModelGroups</c>) of which the key may use a member, owned by <c>tokenrouter</c>.</summary>
public static class ModelsApi
{
    public sealed record ModelEntry(string Id, string Object, long Created, string OwnedBy);
    public sealed record ModelList(string Object, IReadOnlyList<ModelEntry> Data);

    public static RouteGroupBuilder MapModelsApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/models", ListModels).WithName("ListModels");
        return v1;
    }

    private static Ok<ModelList> ListModels(HttpContext context, ModelRouter router, PriceTable prices, IOptionsMonitor<RoutingOptions> routing)
    {
        var identity = context.Features.Get<ClientIdentity>();
        var data = new List<ModelEntry>();
        foreach (var model in prices.Prices.Keys.Order(StringComparer.Ordinal))
        {
            // Only what the key (and its team) may use.
            if (identity is not null && !identity.MayUse(model)) continue;
            try
            {
                var target = router.Resolve(model);
                data.Add(new ModelEntry(model, "model", 0, target.Provider.Name));
            }
            catch (ApiError)
            {
                // Its provider is not configured here: not routable, not listed.
            }
        }
        foreach (var (group, members) in routing.CurrentValue.ModelGroups.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            if (members.Length > 0 && (identity is null || members.Any(identity.MayUse))) data.Add(new ModelEntry(group, "model", 0, "tokenrouter"));
        }
        return TypedResults.Ok(new ModelList("list", data));
    }
}
