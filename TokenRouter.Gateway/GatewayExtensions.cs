namespace Microsoft.Extensions.Hosting;

public static class GatewayExtensions
{
    public static TBuilder AddGatewayServices<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder => builder;
    public static WebApplication MapGatewayApi(this WebApplication app) => app;
}
