using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Auth;

/// <summary>
/// Authenticates a client key on every <c>/v1</c> endpoint (the group calls <see cref="ClientKeyEndpointExtensions.RequireClientKey"/>, <see cref="ClientKeyEndpointExtensions.UseClientKeys"/> runs this handler), so handlers
/// receive an authenticated <see cref="ClientIdentity"/> instead of checking keys themselves. The key lookup is
/// <see cref="ApiKeyAuthenticator"/>'s (static keys, Admin's keys through Redis, a local cache); a refusal is answered
/// in the client's own API shape: 401, or 503 with <c>Retry-After</c> when the key store cannot be reached.
/// </summary>
public sealed class ClientKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyAuthenticator authenticator) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ClientKey";

    /// <summary>One principal for every client: who the client is travels as the <see cref="ClientIdentity"/> feature,
    /// so a request allocates no claims, ticket or result.</summary>
    private static readonly ClaimsPrincipal Client = new(new ClaimsIdentity([new Claim(ClaimTypes.Role, "client")], SchemeName));
    private static readonly Task<AuthenticateResult> Authenticated = Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(Client, SchemeName)));
    private static readonly Task<object> NoEvents = Task.FromResult(new object());

    internal static readonly AuthenticationScheme ClientKeyScheme = new(SchemeName, null, typeof(ClientKeyAuthenticationHandler));

    protected override Task<object> CreateEventsAsync() => NoEvents;

    /// <summary>
    /// <see cref="AuthenticationHandler{TOptions}.AuthenticateAsync"/> without its two async layers — forwarding to
    /// another scheme, which this one never does, and debug logging — each of which allocated a task per request.
    /// An unexpected failure of the lookup is the gateway's (500), not a refused key.
    /// </summary>
    internal Task<AuthenticateResult> AuthenticateKeyAsync() => HandleAuthenticateOnceAsync();

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        // A known key is answered from memory: no state machine, no task of our own.
        var pending = authenticator.AuthenticateAsync(Request, Context.RequestAborted);
        if (!pending.IsCompletedSuccessfully) return AwaitAsync(pending);
        Context.Features.Set(pending.Result);
        return Authenticated;
    }

    private async Task<AuthenticateResult> AwaitAsync(ValueTask<ClientIdentity> pending)
    {
        try
        {
            Context.Features.Set(await pending);
            return await Authenticated;
        }
        catch (ApiError error)
        {
            Context.Features.Set(error);
            return AuthenticateResult.Fail(error.Message);
        }
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var error = Context.Features.Get<ApiError>() ?? ApiError.Unauthorized("Missing API key.");
        if (error.Status == StatusCodes.Status401Unauthorized) Response.Headers.WWWAuthenticate = "Bearer realm=\"tokenrouter\"";
        return new ApiErrorResult(error, ClientFormat.Of(Request)).ExecuteAsync(Context);
    }
}

public static class ClientKeyEndpointExtensions
{
    /// <summary>
    /// Registers <see cref="ClientKeyAuthenticationHandler"/> and what it needs, without ASP.NET Core's authentication
    /// services: <see cref="UseClientKeys"/> runs the handler itself. Registering those services makes the host add
    /// the authentication middleware in front of every request, and each request then pays for a DI scope, the scoped
    /// authentication service and handler provider, their dictionaries and a claims-transformation set: 1.6 KB of the
    /// 13.4 KB a request allocated in the load benchmark (README, "Allocation per request"), for one scheme that never changes.
    /// </summary>
    public static IServiceCollection AddClientKeyAuthentication(this IServiceCollection services)
    {
        services.AddOptions<AuthenticationSchemeOptions>(ClientKeyAuthenticationHandler.SchemeName);
        services.AddWebEncoders();
        return services;
    }

    /// <summary>Requires a client key on every endpoint of <paramref name="group"/>; <see cref="UseClientKeys"/> checks it.</summary>
    public static RouteGroupBuilder RequireClientKey(this RouteGroupBuilder group) => group.WithMetadata(ClientKeyRequired.Instance);

    /// <summary>
    /// Runs the <see cref="ClientKeyAuthenticationHandler"/> for every endpoint that requires a client key, and
    /// challenges (401/503 in the client's shape) when it fails — as the authorization middleware does for a policy,
    /// without its policy evaluation (requirements, handlers, their contexts: 2.9 µs of CPU a request in the load profile
    /// at bc5eca1) or an endpoint filter (which routes every argument and result of the handler through a filter
    /// context: 4 µs a request more than this middleware, side by side). A handler serves one request; it is built from
    /// the root services, so no request scope is created for it. Must follow routing, which ASP.NET Core puts first.
    /// As it awaits every request anyway, it also tags a 5xx for the request metric (<see cref="ServerErrorTypeTags"/>).
    /// </summary>
    public static IApplicationBuilder UseClientKeys(this IApplicationBuilder app)
    {
        var services = app.ApplicationServices;
        var create = ActivatorUtilities.CreateFactory<ClientKeyAuthenticationHandler>(Type.EmptyTypes);
        return app.Use((context, next) => context.GetEndpoint()?.Metadata.GetMetadata<ClientKeyRequired>() is null
            ? ServerErrorTypeTags.AfterAsync(context, next)
            : AuthenticateThenAsync(create(services, null), context, next));
    }

    private static async Task AuthenticateThenAsync(ClientKeyAuthenticationHandler handler, HttpContext http, RequestDelegate next)
    {
        await handler.InitializeAsync(ClientKeyAuthenticationHandler.ClientKeyScheme, http);
        var result = await handler.AuthenticateKeyAsync();
        if (result.Succeeded)
        {
            // HttpContext.User is left alone: nothing reads it, and setting it costs a feature object per request.
            await next(http);
        }
        else
        {
            await handler.ChallengeAsync(null);
        }
        ServerErrorTypeTags.Add(http);
    }

    private sealed class ClientKeyRequired
    {
        public static readonly ClientKeyRequired Instance = new();
    }
}

public static class ClientIdentityHttpContextExtensions
{
    /// <summary>The client the <c>/v1</c> group authenticated.</summary>
    public static ClientIdentity ClientIdentity(this HttpContext context) =>
        context.Features.Get<ClientIdentity>() ?? throw new InvalidOperationException("The endpoint is not behind client-key authentication.");
}
