using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Gateway.Apis;

/// <summary>Anthropic-compatible <c>POST /v1/messages</c>: any provider, answered in Anthropic's format.</summary>
public static class MessagesApi
{
    public static RouteGroupBuilder MapMessagesApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/messages", (HttpContext context, ChatHandler forwarder) => forwarder.HandleAsync(context, ApiFormat.Anthropic))
            .WithName("CreateMessage")
            .DisableAntiforgery();
        v1.MapOtherMethodsNotAllowed("/messages", ApiFormat.Anthropic);
        return v1;
    }
}
