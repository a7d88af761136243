using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace TokenRouter.Simulator;

/// <summary>
/// The simulator's own API key: every <c>/sim/*</c> endpoint requires it, as <c>Authorization: Bearer</c> or
/// <c>x-api-key</c>, like the providers it imitates. Compared as SHA-256 digests in constant time.
/// </summary>
internal sealed class SimulatorKey
{
    public const string GeneratedPrefix = "sk-sim-";
    private const string ApiKeyHeader = "x-api-key";

    private readonly byte[] _digest;

    public SimulatorKey(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        _digest = SHA256.HashData(Encoding.UTF8.GetBytes(key));
    }

    /// <summary>A fresh random key: 32 random bytes, base64url, prefixed <c>sk-sim-</c>.</summary>
    public static string Generate() => GeneratedPrefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// Wraps <paramref name="next"/> so it runs only for a request that carries the key; any other request gets a 401
    /// in <paramref name="format"/>'s error shape (and is not counted in the stats).
    /// </summary>
    public RequestDelegate Require(SimFormat format, RequestDelegate next) => context =>
    {
        if (Accepts(context.Request, out var presented))
            return next(context);
        var error = new SimError(StatusCodes.Status401Unauthorized, format == SimFormat.Anthropic ? "authentication_error" : "invalid_request_error",
            (presented, format) switch
            {
                (false, SimFormat.Anthropic) => "x-api-key header is required.",
                (false, _) => "You didn't provide an API key. Provide the simulator's key (Simulator:ApiKey) in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY) or in x-api-key.",
                (true, SimFormat.Anthropic) => "invalid x-api-key",
                (true, _) => "Incorrect API key provided. Use the simulator's key (Simulator:ApiKey).",
            },
            Code: format == SimFormat.Anthropic ? null : "invalid_api_key");
        return WriteErrorAsync(context, format, error);
    };

    /// <summary>True when either header carries the key; <paramref name="presented"/> tells whether any key was sent.</summary>
    public bool Accepts(HttpRequest request, out bool presented)
    {
        presented = false;
        var match = false;
        foreach (var value in request.Headers.Authorization)
        {
            if (value is null || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) continue;
            presented = true;
            match |= Matches(value.AsSpan("Bearer ".Length).Trim());
        }

        foreach (var value in request.Headers[ApiKeyHeader])
        {
            if (string.IsNullOrEmpty(value)) continue;
            presented = true;
            match |= Matches(value.AsSpan().Trim());
        }

        return match;
    }

    private bool Matches(ReadOnlySpan<char> candidate)
    {
        if (candidate.IsEmpty) return false;
        var max = Encoding.UTF8.GetMaxByteCount(candidate.Length);
        var buffer = max <= 512 ? stackalloc byte[max] : new byte[max];
        var written = Encoding.UTF8.GetBytes(candidate, buffer);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(buffer[..written], digest);
        return CryptographicOperations.FixedTimeEquals(digest, _digest);
    }

    private static async Task WriteErrorAsync(HttpContext context, SimFormat format, SimError error)
    {
        using var buffer = new SimBuffer(512);
        using (var writer = new Utf8JsonWriter(buffer, SimPromptWriter.CompactJson))
        {
            error.WriteTo(writer, format);
        }

        var response = context.Response;
        response.StatusCode = error.Status;
        response.ContentType = "application/json";
        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }
}
