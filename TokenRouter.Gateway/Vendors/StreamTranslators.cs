using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Vendors.Anthropic;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Gateway.Vendors;

/// <summary>Picks the stream translator for a provider format and a client format.</summary>
public static class StreamTranslators
{
    /// <param name="clientWantsUsage">OpenAI clients: whether they asked for the usage chunk (<c>stream_options.include_usage</c>).</param>
    /// <param name="clientModel">The model name the client asked for, shown in translated events.</param>
    public static IStreamTranslator Create(ApiFormat providerFormat, ApiFormat clientFormat, bool clientWantsUsage, string clientModel,
        TimeProvider? timeProvider = null) => (providerFormat, clientFormat) switch
        {
            (ApiFormat.OpenAI, ApiFormat.OpenAI) => new OpenAIStreamPassthrough(clientWantsUsage),
            (ApiFormat.Anthropic, ApiFormat.Anthropic) => new AnthropicStreamPassthrough(),
            (ApiFormat.Anthropic, ApiFormat.OpenAI) => new AnthropicToOpenAIStream(clientWantsUsage, clientModel, timeProvider),
            _ => new OpenAIToAnthropicStream(clientModel),
        };
}
