using System.Net;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// The one pooled connection to providers: an <see cref="HttpMessageInvoker"/> over a <see cref="SocketsHttpHandler"/>.
/// Not an HttpClient: no buffering, no default timeout (streams can run for minutes; the gateway applies its own
/// time-to-headers limit), no retries (a POST that reached the provider may have been billed), no redirects.
/// </summary>
public sealed class ProviderHttpClient : IDisposable
{
    public HttpMessageInvoker Invoker { get; }

    public ProviderHttpClient(IOptions<ProxyOptions> options)
    {
        var o = options.Value;
        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            MaxConnectionsPerServer = o.MaxConnectionsPerServer,
            PooledConnectionIdleTimeout = o.IdleConnectionTimeout,
            // Re-resolve DNS now and then: provider endpoints move.
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            ConnectTimeout = o.ConnectTimeout,
            EnableMultipleHttp2Connections = true,
        }, disposeHandler: true);
    }

    public void Dispose() => Invoker.Dispose();
}
