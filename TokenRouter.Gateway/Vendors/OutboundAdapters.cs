using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Gateway.Vendors;

/// <summary>One outbound adapter per provider kind.</summary>
public sealed class OutboundAdapters(IOptions<GatewayOptions> options)
{
    private readonly OpenAIAdapter _openAI = new();
    private readonly DeepSeekAdapter _deepSeek = new();
    private readonly AnthropicAdapter _anthropic = new(options.Value.AnthropicDefaultMaxTokens);

    public IOutboundAdapter For(ProviderKind kind) => kind switch
    {
        ProviderKind.Anthropic => _anthropic,
        ProviderKind.DeepSeek => _deepSeek,
        _ => _openAI,
    };
}
