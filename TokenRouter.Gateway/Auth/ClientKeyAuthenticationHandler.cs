using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Gateway.Auth;

/// <summary>
/// Authenticates a client key on every <c>/v1</c> endpoint (the group calls <see cref="ClientKeyEndpointExtensions.RequireClientKey"/>), so handlers
/// receive an authenticated <see cref="ClientIdentity"/> instead of checking keys themselves. The key lookup is
/// <see cref="ApiKeyAuthenticator"/>'s (static keys, Admin's keys through Redis, a local cache); a refusal is answered
/// in the client's own API shape: 401, or 503 with <c>Retry-After</c> when the key store cannot be reached.
/// </summary>
/// <remarks>
/// A plain <see cref="IAuthenticationHandler"/> rather than an <see cref="AuthenticationHandler{TOptions}"/>: ASP.NET Core
/// creates a handler per request, and the base class then looks up its options, creates its logger (a lock in the
/// logger factory) and its events, none of which this scheme uses. In the load benchmark the authentication layer cost
/// ~4.5 µs of CPU a request beyond the key lookup itself (bench/results/load-auth-json.md).
/// </remarks>
public sealed class ClientKeyAuthenticationHandler(ApiKeyAuthenticator authenticator) : IAuthenticationHandler
{
    public const string SchemeName = "ClientKey";

    /// <summary>One principal for every client: who the client is travels as the <see cref="ClientIdentity"/> feature,
    /// so a request allocates no claims.</summary>
    private static readonly ClaimsPrincipal Client = new(new ClaimsIdentity([new Claim(ClaimTypes.Role, "client")], SchemeName));
    private static readonly AuthenticationTicket Ticket = new(Client, SchemeName);

    private HttpContext _context = null!;
    private Task<AuthenticateResult>? _result;

    public Task InitializeAsync(AuthenticationScheme scheme, HttpContext context)
    {
        _context = context;
        return Task.CompletedTask;
    }

    /// <summary>Once per request: the middleware and an endpoint asking again get the same result.</summary>
    public Task<AuthenticateResult> AuthenticateAsync() => _result ??= AuthenticateOnceAsync();

    private async Task<AuthenticateResult> AuthenticateOnceAsync()
    {
        try
        {
            _context.Features.Set(await authenticator.AuthenticateAsync(_context.Request, _context.RequestAborted));
            return AuthenticateResult.Success(Ticket);
        }
        catch (ApiError error)
        {
            _context.Features.Set(error);
            return AuthenticateResult.Fail(error.Message);
        }
    }

    public Task ChallengeAsync(AuthenticationProperties? properties)
    {
        var error = _context.Features.Get<ApiError>() ?? ApiError.Unauthorized("Missing API key.");
        if (error.Status == StatusCodes.Status401Unauthorized) _context.Response.Headers.WWWAuthenticate = "Bearer realm=\"tokenrouter\"";
        return new ApiErrorResult(error, ClientFormat.Of(_context.Request)).ExecuteAsync(_context);
    }

    public Task ForbidAsync(AuthenticationProperties? properties)
    {
        _context.Response.StatusCode = StatusCodes.Status403Forbidden;
        return Task.CompletedTask;
    }
}

public static class ClientKeyEndpointExtensions
{
    /// <summary>
    /// Runs the <see cref="ClientKeyAuthenticationHandler"/> before every endpoint of <paramref name="group"/> and
    /// challenges (401/503 in the client's shape) when it fails. An endpoint filter rather than the authorization
    /// middleware and a policy: both need the same one scheme, and the policy evaluation (requirements, handlers,
    /// their contexts) took 2.9 µs of CPU a request in the load profile at bc5eca1 for nothing more.
    /// </summary>
    public static RouteGroupBuilder RequireClientKey(this RouteGroupBuilder group) => group.AddEndpointFilter(static async (context, next) =>
    {
        var http = context.HttpContext;
        // ASP.NET Core adds the authentication middleware by itself, and with one scheme it is the default: the request
        // was authenticated already. Authenticating again returns the handler's cached result but still costs a lookup,
        // a new ticket and a metric record.
        var result = http.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult is { } done && done.Ticket?.AuthenticationScheme == ClientKeyAuthenticationHandler.SchemeName
            ? done
            : await http.AuthenticateAsync(ClientKeyAuthenticationHandler.SchemeName);
        if (!result.Succeeded)
        {
            await http.ChallengeAsync(ClientKeyAuthenticationHandler.SchemeName);
            return TypedResults.Empty;
        }
        http.User = result.Principal;
        return await next(context);
    });
}

public static class ClientIdentityHttpContextExtensions
{
    /// <summary>The client the <c>/v1</c> group authenticated.</summary>
    public static ClientIdentity ClientIdentity(this HttpContext context) =>
        context.Features.Get<ClientIdentity>() ?? throw new InvalidOperationException("The endpoint is not behind client-key authentication.");
}
