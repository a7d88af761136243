using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>Where this process listens, so the gateway can reach its built-in simulator over real HTTP.</summary>
public sealed class SelfAddress(IServer server)
{
    public Uri Resolve()
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses;
        if (addresses is not null)
        {
            foreach (var address in addresses)
            {
                if (!address.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) continue;
                var normalized = address.Replace("://+", "://127.0.0.1").Replace("://*", "://127.0.0.1")
                    .Replace("://0.0.0.0", "://127.0.0.1").Replace("://[::]", "://127.0.0.1");
                return new Uri(normalized.TrimEnd('/') + "/");
            }
        }
        throw ApiError.BadGateway("The simulator is unreachable: the gateway has no plain-HTTP address. Set Providers:SimulatorBaseUrl.");
    }
}
