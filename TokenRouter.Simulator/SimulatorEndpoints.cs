using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using TokenRouter.Simulator;

namespace Microsoft.AspNetCore.Builder;

public static class SimulatorEndpoints
{
    /// <summary>
    /// Maps the fake provider under <c>/sim</c> (no auth; any key is accepted): OpenAI, DeepSeek and Anthropic
    /// chat routes plus <c>GET /sim/stats</c> and <c>POST /sim/reset</c>. Maps nothing when disabled.
    /// </summary>
    public static IEndpointRouteBuilder MapSimulator(this IEndpointRouteBuilder endpoints)
    {
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<SimulatorOptions>>().Value;
        if (!options.Enabled)
            return endpoints;

        var handler = endpoints.ServiceProvider.GetRequiredService<SimulatorHandler>();
        var sim = endpoints.MapGroup("/sim")
            .AllowAnonymous()
            .ExcludeFromDescription()
            .WithTags("Simulator");

        sim.MapPost("/openai/v1/chat/completions", context => handler.HandleAsync(context, SimFormat.OpenAI));
        sim.MapPost("/deepseek/chat/completions", context => handler.HandleAsync(context, SimFormat.DeepSeek));
        sim.MapPost("/deepseek/v1/chat/completions", context => handler.HandleAsync(context, SimFormat.DeepSeek));
        sim.MapPost("/anthropic/v1/messages", context => handler.HandleAsync(context, SimFormat.Anthropic));
        sim.MapGet("/stats", handler.StatsAsync);
        sim.MapPost("/reset", context =>
        {
            handler.Reset();
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return Task.CompletedTask;
        });
        return endpoints;
    }
}
