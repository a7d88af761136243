namespace TokenRouter.AppHost.Infrastructure;

/// <summary>
/// A locally installed <c>postgres</c> run by DCP. Its connection string (the maintenance database) lets health
/// checks and the database-creation step reach it; the apps get the <c>tokenrouter</c> database's connection string.
/// </summary>
public sealed class LocalPostgresResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string EndpointName = "tcp";

    private EndpointReference? _endpoint;

    public EndpointReference Endpoint => _endpoint ??= new(this, EndpointName);

    // Trust auth on 127.0.0.1 (initdb --auth=trust): a dev-only cluster reachable from this machine alone.
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={Endpoint.Property(EndpointProperty.IPV4Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username=postgres");

    public ReferenceExpression DatabaseConnectionString(string database) => ReferenceExpression.Create(
        $"Host={Endpoint.Property(EndpointProperty.IPV4Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username=postgres;Database={database}");
}

/// <summary>A locally installed <c>redis-server</c> run by DCP, exposing a StackExchange.Redis connection string (<c>127.0.0.1:port</c>).</summary>
public sealed class LocalRedisResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string EndpointName = "tcp";

    private EndpointReference? _endpoint;

    public EndpointReference Endpoint => _endpoint ??= new(this, EndpointName);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"{Endpoint.Property(EndpointProperty.IPV4Host)}:{Endpoint.Property(EndpointProperty.Port)}");
}
