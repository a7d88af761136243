using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Gateway.Apis;

/// <summary>
/// Every other <c>/v1/*</c> request, any method (<c>POST /v1/embeddings</c>, <c>POST /v1/messages/count_tokens</c>,
/// <c>GET /v1/files</c>, …), passed through to a provider unchanged. A catch-all route rather than a fallback, so the
/// gateway's own endpoints keep precedence while paths whose last segment has a dot (<c>/v1/models/gpt-4.1</c>) still match.
/// </summary>
public static class PassthroughApi
{
    public static RouteGroupBuilder MapPassthroughApi(this RouteGroupBuilder v1)
    {
        v1.Map("/{**path}", (HttpContext context, PassthroughForwarder forwarder) => forwarder.HandleAsync(context))
            .WithName("Passthrough")
            .DisableAntiforgery();
        return v1;
    }
}
