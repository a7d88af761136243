using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace TokenRouter.AppHost.Infrastructure;

// These speak the protocol on purpose: DCP's proxy accepts TCP connections seconds before the server behind it
// listens, so a bare connect would report healthy too early and let WaitFor release the apps.

/// <summary>Healthy when <c>SELECT 1</c> succeeds on the resource's connection string.</summary>
internal sealed class PostgresQueryHealthCheck(IResourceWithConnectionString resource) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var connectionString = await resource.GetConnectionStringAsync(cancellationToken).ConfigureAwait(false);
        if (string.IsNullOrEmpty(connectionString))
        {
            return HealthCheckResult.Unhealthy($"The connection string of '{resource.Name}' is not available yet.");
        }

        await using var connection = new NpgsqlConnection(LocalPostgresSetup.Unpooled(connectionString));
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT 1", connection);
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return HealthCheckResult.Healthy();
    }
}

/// <summary>Healthy when Redis answers <c>PING</c> with <c>+PONG</c> (not while it is still loading, for instance).</summary>
internal sealed class RedisPingHealthCheck(IResourceWithConnectionString resource) : IHealthCheck
{
    private static readonly byte[] Ping = "*1\r\n$4\r\nPING\r\n"u8.ToArray();

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var connectionString = await resource.GetConnectionStringAsync(cancellationToken).ConfigureAwait(false);
        var hostAndPort = connectionString?.Split(',')[0] ?? "";
        var colon = hostAndPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostAndPort.AsSpan(colon + 1), out var port))
        {
            return HealthCheckResult.Unhealthy($"The connection string of '{resource.Name}' is not available yet.");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        using var client = new TcpClient();
        await client.ConnectAsync(hostAndPort[..colon], port, timeout.Token).ConfigureAwait(false);
        var stream = client.GetStream();
        await stream.WriteAsync(Ping, timeout.Token).ConfigureAwait(false);

        // A reply line ends with CRLF; it may arrive in pieces.
        var buffer = new byte[64];
        var read = 0;
        int chunk;
        do
        {
            chunk = await stream.ReadAsync(buffer.AsMemory(read), timeout.Token).ConfigureAwait(false);
            read += chunk;
        }
        while (chunk > 0 && read < buffer.Length && Array.IndexOf(buffer, (byte)'\n', 0, read) < 0);

        var reply = Encoding.ASCII.GetString(buffer, 0, read).TrimEnd();
        return reply == "+PONG"
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy(read == 0 ? "Redis closed the connection without answering PING." : $"Redis answered PING with '{reply}'.");
    }
}
