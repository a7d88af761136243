using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Gateway.Apis;

/// <summary>OpenAI-compatible <c>POST /v1/chat/completions</c>.</summary>
public static class ChatCompletionsApi
{
    public static RouteGroupBuilder MapChatCompletionsApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/chat/completions", (HttpContext context, ChatHandler forwarder) => forwarder.HandleAsync(context, ApiFormat.OpenAI))
            .WithName("CreateChatCompletion")
            .DisableAntiforgery();
        v1.MapOtherMethodsNotAllowed("/chat/completions", ApiFormat.OpenAI);
        return v1;
    }
}
