using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Routing;

namespace TokenRouter.Gateway.Providers;

/// <summary>
/// What only the model routes can say of <see cref="RoutingOptions.ModelGroups"/>, checked at start-up: every member has
/// a route, and no group is named like a model the gateway routes (it would hide that model from every client). A
/// member whose provider has no deployment yet passes: Admin may add one, and until then it is skipped per request.
/// </summary>
public sealed class ModelGroupRoutesValidator(ModelRouter router) : IValidateOptions<RoutingOptions>
{
    public ValidateOptionsResult Validate(string? name, RoutingOptions o)
    {
        var errors = new List<string>();
        foreach (var (group, members) in o.ModelGroups)
        {
            var at = $"Routing:ModelGroups:{group} (TOKENROUTER_MODEL_GROUPS)";
            if (Routes(group))
                errors.Add($"{at}: '{group}' is a model name the gateway routes already; name the group something no provider prefix matches (e.g. 'fast').");
            foreach (var member in members ?? [])
            {
                if (!string.IsNullOrWhiteSpace(member) && !o.ModelGroups.ContainsKey(member) && !Routes(member))
                    errors.Add($"{at}: member '{member}' is not a routable model (no provider prefix such as gpt-, claude-, deepseek-, sim-, a provider/model name or Providers:Routes matches it).");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private bool Routes(string model)
    {
        try
        {
            router.Resolve(model);
            return true;
        }
        catch (ApiError e)
        {
            return e.Code != "model_not_found"; // a route to a provider without a deployment (yet) is still a route
        }
    }
}
