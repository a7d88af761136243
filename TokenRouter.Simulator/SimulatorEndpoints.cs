using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using TokenRouter.Simulator;

namespace Microsoft.AspNetCore.Builder;

public static class SimulatorEndpoints
{
    /// <summary>
    /// Maps the fake provider under <c>/sim</c>: OpenAI, DeepSeek and Anthropic chat routes plus <c>GET /sim/stats</c>
    /// and <c>POST /sim/reset</c>. Every route requires the simulator's key (<see cref="SimulatorOptions.ApiKey"/>) as
    /// <c>Authorization: Bearer</c> or <c>x-api-key</c>; without it: 401 in the route's error shape. Maps nothing when disabled.
    /// </summary>
    public static IEndpointRouteBuilder MapSimulator(this IEndpointRouteBuilder endpoints)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<SimulatorOptions>>().Value;
        if (!options.Enabled)
            return endpoints;

        var handler = endpoints.ServiceProvider.GetRequiredService<SimulatorHandler>();
        var key = new SimulatorKey(options.ApiKey!);
        var sim = endpoints.MapGroup("/sim")
            .AllowAnonymous() // not the host's auth: the simulator checks its own key
            .ExcludeFromDescription()
            .WithTags("Simulator");

        sim.MapPost("/openai/v1/chat/completions", key.Require(SimFormat.OpenAI, context => handler.HandleAsync(context, SimFormat.OpenAI)));
        sim.MapPost("/deepseek/chat/completions", key.Require(SimFormat.DeepSeek, context => handler.HandleAsync(context, SimFormat.DeepSeek)));
        sim.MapPost("/deepseek/v1/chat/completions", key.Require(SimFormat.DeepSeek, context => handler.HandleAsync(context, SimFormat.DeepSeek)));
        sim.MapPost("/anthropic/v1/messages", key.Require(SimFormat.Anthropic, context => handler.HandleAsync(context, SimFormat.Anthropic)));
        sim.MapGet("/stats", key.Require(SimFormat.OpenAI, handler.StatsAsync));
        sim.MapPost("/reset", key.Require(SimFormat.OpenAI, context =>
        {
            handler.Reset();
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return Task.CompletedTask;
        }));
        return endpoints;
    }
}
