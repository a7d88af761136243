using Microsoft.AspNetCore.Mvc;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Gateway.Apis;

/// <summary>OpenAI-compatible <c>POST /v1/chat/completions</c>.</summary>
public static class ChatCompletionsApi
{
    public static RouteGroupBuilder MapChatCompletionsApi(this RouteGroupBuilder v1)
    {
        // The singleton is resolved once: as a handler parameter it would open a DI scope on every request.
        var chat = ((IEndpointRouteBuilder)v1).ServiceProvider.GetRequiredService<ChatHandler>();
        Func<HttpContext, Task<IResult>> handle = context => chat.HandleAsync(context, ApiFormat.OpenAI);
        v1.MapPost("/chat/completions", handle)
            .WithName("CreateChatCompletion")
            .DisableAntiforgery()
            .WithMetadata(new SkipStatusCodePagesAttribute()); // every answer has a body, an error one included
        v1.MapOtherMethodsNotAllowed("/chat/completions", ApiFormat.OpenAI);
        return v1;
    }
}
