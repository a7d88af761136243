namespace TokenRouter.Gateway.Routing;

/// <summary>Why an attempt at a deployment failed before the client saw a byte: every kind goes to the next deployment.</summary>
public enum FailureKind
{
    /// <summary>No connection (refused, DNS, TLS, connect timeout).</summary>
    Connect,
    /// <summary>The connection broke before the response headers.</summary>
    Reset,
    /// <summary>No response headers within the first-byte timeout.</summary>
    Timeout,
    /// <summary>429.</summary>
    RateLimited,
    /// <summary>500, 502, 503, 504, 529.</summary>
    ServerError,
    /// <summary>401, 403: this key is revoked or lacks access.</summary>
    Auth,
    /// <summary>Not sent: the deployment is at its own RPM/TPM (<see cref="DeploymentRateLimiter"/>) or concurrency cap
    /// (<see cref="DeploymentConcurrencyLimiter"/>).</summary>
    Saturated,
}

/// <summary>Which provider answers go to another deployment (or fallback model), and how they are labelled.</summary>
public static class FailoverRules
{
    /// <summary>The failure kind of a provider status; null for a success or a client error (400, 404, 413, 422: never retried).</summary>
    public static FailureKind? KindOf(int status) => status switch
    {
        429 => FailureKind.RateLimited,
        401 or 403 => FailureKind.Auth,
        500 or 502 or 503 or 504 or 529 => FailureKind.ServerError,
        _ => null,
    };

    public static string Label(FailureKind kind) => kind switch
    {
        FailureKind.Connect => "connect",
        FailureKind.Reset => "reset",
        FailureKind.Timeout => "timeout",
        FailureKind.RateLimited => "rate_limited",
        FailureKind.ServerError => "server_error",
        FailureKind.Saturated => "saturated",
        _ => "auth",
    };
}
