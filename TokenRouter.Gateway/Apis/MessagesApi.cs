using Microsoft.AspNetCore.Mvc;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Gateway.Apis;

/// <summary>Anthropic-compatible <c>POST /v1/messages</c>: any provider, answered in Anthropic's format.</summary>
public static class MessagesApi
{
    public static RouteGroupBuilder MapMessagesApi(this RouteGroupBuilder v1)
    {
        // The singleton is resolved once: as a handler parameter it would open a DI scope on every request.
        var chat = ((IEndpointRouteBuilder)v1).ServiceProvider.GetRequiredService<ChatHandler>();
        Func<HttpContext, Task<IResult>> handle = context => chat.HandleAsync(context, ApiFormat.Anthropic);
        v1.MapPost("/messages", handle)
            .WithName("CreateMessage")
            .DisableAntiforgery()
            .WithMetadata(new SkipStatusCodePagesAttribute()); // every answer has a body, an error one included
        v1.MapOtherMethodsNotAllowed("/messages", ApiFormat.Anthropic);
        return v1;
    }
}
