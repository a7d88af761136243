using TokenRouter.Admin.Data;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Providers;

/// <summary>Republishes the provider deployments every <see cref="ProviderDeploymentContract.ResyncInterval"/>: a change
/// made while Redis was away, or a flushed Redis, reaches the gateways within one interval.</summary>
public sealed partial class ProviderDeploymentSyncWorker(
    IServiceScopeFactory scopes, ProviderDeploymentPublisher publisher, TimeProvider time, ILogger<ProviderDeploymentSyncWorker> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(ProviderDeploymentContract.ResyncInterval, time);
        do
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await publisher.PublishAllAsync(scope.ServiceProvider.GetRequiredService<AdminDbContext>(), stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // Postgres away: the next tick tries again.
                LogFailed(logger, e.GetType().Name);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Provider deployment resync failed ({Error}); retrying next interval")]
    private static partial void LogFailed(ILogger logger, string error);
}
