using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Gives up on a provider that goes quiet once its headers have arrived: each read of the body re-arms one deadline
/// (<see cref="Configuration.GatewayOptions.UpstreamIdleTimeout"/>), and a read it cuts off becomes a 504
/// <see cref="ApiError"/>. Without it, a provider that sends headers and then stalls holds its client forever.
/// </summary>
/// <param name="deadline">A deadline linked to <paramref name="cancel"/>; it also carried the wait for the headers.</param>
/// <param name="cancel">Cancelled when nobody waits for the answer any more: that is not a timeout.</param>
public sealed class IdleDeadline(UpstreamDeadline deadline, CancellationToken cancel, TimeSpan idle, string providerName)
{
    /// <summary>Starts (or restarts) the wait for the provider's next bytes.</summary>
    public void Arm() => deadline.Restart(idle);

    public async ValueTask<int> ReadAsync(Stream stream, Memory<byte> buffer)
    {
        Arm();
        try
        {
            return await stream.ReadAsync(buffer, deadline.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && deadline.IsCancellationRequested && !cancel.IsCancellationRequested)
        {
            throw ApiError.GatewayTimeout($"The provider '{providerName}' sent nothing for {idle.TotalSeconds:0.#} s.");
        }
    }
}
