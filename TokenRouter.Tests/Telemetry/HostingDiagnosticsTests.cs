using Microsoft.Extensions.Logging;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Telemetry;

/// <summary>
/// ASP.NET Core starts an Activity and a log scope for every request whenever its hosting logger is on, traced or not;
/// the gateway ships with that logger off and lets an operator turn it back on.
/// </summary>
public sealed class HostingDiagnosticsTests
{
    private const string HostingCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    [Fact]
    public void Shipped_settings_turn_the_per_request_hosting_logger_off_and_keep_the_gateways_own_logs()
    {
        using var gateway = new GatewayFactory();
        var loggers = gateway.Service<ILoggerFactory>();

        Assert.False(loggers.CreateLogger(HostingCategory).IsEnabled(LogLevel.Critical));
        Assert.True(loggers.CreateLogger("TokenRouter.Gateway").IsEnabled(LogLevel.Warning));
        Assert.True(loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning));
    }

    [Fact]
    public void An_operator_can_turn_the_hosting_logger_back_on()
    {
        using var gateway = new GatewayFactory(new Dictionary<string, string?> { [$"Logging:LogLevel:{HostingCategory}"] = "Information" });

        Assert.True(gateway.Service<ILoggerFactory>().CreateLogger(HostingCategory).IsEnabled(LogLevel.Information));
    }
}
