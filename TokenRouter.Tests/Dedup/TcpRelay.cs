using System.Net;
using System.Net.Sockets;

namespace TokenRouter.Tests.Dedup;

/// <summary>
/// A loopback TCP relay in front of a server. <see cref="Cut"/> drops every connection and refuses new ones: to the
/// client behind it the server is gone, as if that process had crashed or been partitioned away. <see cref="Pause"/>
/// holds every byte in flight until <see cref="Resume"/>: a server that is slow to answer.
/// </summary>
internal sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _cut = new();
    private readonly List<TcpClient> _connections = [];
    private readonly Task _accepting;
    private TaskCompletionSource _open = Opened();

    public TcpRelay(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string RedisConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=500,asyncTimeout=1000,syncTimeout=1000";

    public void Pause()
    {
        lock (_connections)
        {
            if (_open.Task.IsCompleted) _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void Resume()
    {
        lock (_connections) _open.TrySetResult();
    }

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private Task Gate
    {
        get
        {
            lock (_connections) return _open.Task;
        }
    }

    public void Cut()
    {
        if (_cut.IsCancellationRequested) return;
        _cut.Cancel();
        _listener.Stop();
        lock (_connections)
        {
            foreach (var connection in _connections) connection.Dispose();
            _connections.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Cut();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        _cut.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_cut.IsCancellationRequested)
        {
            var inbound = await _listener.AcceptTcpClientAsync(_cut.Token);
            var outbound = new TcpClient();
            try
            {
                await outbound.ConnectAsync(_target, _cut.Token);
            }
            catch
            {
                inbound.Dispose();
                outbound.Dispose();
                throw;
            }
            lock (_connections)
            {
                if (_cut.IsCancellationRequested)
                {
                    inbound.Dispose();
                    outbound.Dispose();
                    return;
                }
                _connections.Add(inbound);
                _connections.Add(outbound);
            }
            _ = PipeAsync(inbound, outbound);
            _ = PipeAsync(outbound, inbound);
        }
    }

    private async Task PipeAsync(TcpClient from, TcpClient to)
    {
        try
        {
            var source = from.GetStream();
            var target = to.GetStream();
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await source.ReadAsync(buffer, _cut.Token)) > 0)
            {
                var gate = Gate;
                if (!gate.IsCompleted) await gate.WaitAsync(_cut.Token);
                await target.WriteAsync(buffer.AsMemory(0, read), _cut.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }
}
