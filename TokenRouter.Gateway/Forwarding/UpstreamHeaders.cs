using System.Collections.Frozen;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// What of the client's headers may travel to a provider, and what of the provider's comes back. Upstream is an
/// allow-list, not a deny-list: anything not named here (the client's own credentials in <c>api-key</c> or a cookie,
/// <c>X-Forwarded-For</c>, hop-by-hop headers, headers a new SDK invents) stays at the gateway.
/// </summary>
public static class UpstreamHeaders
{
    /// <summary>Client request headers a passthrough call forwards (the body's own <c>Content-*</c> included).</summary>
    private static readonly FrozenSet<string> Forwarded = FrozenSet.Create(StringComparer.OrdinalIgnoreCase,
        "Accept", "Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language", "User-Agent",
        "Idempotency-Key", "OpenAI-Beta", "anthropic-version", "anthropic-beta");

    /// <summary>The SDKs' own telemetry headers (<c>x-stainless-lang</c>, …): harmless, and providers use them.</summary>
    private const string SdkHeaderPrefix = "x-stainless-";

    public static bool IsForwarded(string name) =>
        Forwarded.Contains(name) || name.StartsWith(SdkHeaderPrefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Refuses (400) an allowed header whose value HTTP cannot carry upstream: a header the provider would never see
    /// otherwise must not turn into a 502 at send. Called before anything is admitted or sent.
    /// </summary>
    public static void ValidateAllowed(HttpRequest request)
    {
        foreach (var (name, values) in request.Headers)
        {
            if (!IsForwarded(name)) continue;
            foreach (var value in values) Validate(name, value);
        }
    }

    /// <summary>The media type of <paramref name="content"/> as the provider wrote it, its parameters cut off: read
    /// unparsed, as parsing builds a <c>MediaTypeHeaderValue</c> for every response only to be asked its name.</summary>
    public static string? MediaType(HttpContent content)
    {
        if (!content.Headers.NonValidated.TryGetValues("Content-Type", out var values)) return null;
        var raw = values.ToString();
        var semicolon = raw.IndexOf(';');
        var media = (semicolon < 0 ? raw : raw[..semicolon]).Trim();
        return media.Length == 0 ? null : media;
    }

    /// <summary>Copies the allowed headers of <paramref name="from"/> onto <paramref name="to"/> (checked by
    /// <see cref="ValidateAllowed"/> first).</summary>
    public static void CopyAllowed(HttpRequest from, HttpRequestMessage to)
    {
        foreach (var (name, values) in from.Headers)
        {
            if (!IsForwarded(name)) continue;
            if (name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase)) to.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            else to.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
        }
    }

    /// <summary>A client header's value, refused with a 400 when it is not printable ASCII; null when absent.</summary>
    public static string? ReadVisibleAscii(HttpRequest request, string name)
    {
        var values = request.Headers[name];
        if (values.Count == 0) return null;
        var value = values.ToString();
        Validate(name, value);
        return value;
    }

    private static void Validate(string name, string? value)
    {
        if (value is null) return;
        foreach (var c in value)
        {
            if (c is < ' ' or > '~' && c != '\t')
                throw new ApiError(StatusCodes.Status400BadRequest, "invalid_request_error",
                    $"The '{name}' header holds a character HTTP cannot forward (only printable ASCII is allowed).", "invalid_header");
        }
    }

    /// <summary>A provider's <c>Retry-After</c> in whole seconds (a date becomes the seconds until it), or null.</summary>
    public static int? RetryAfterSeconds(HttpResponseMessage response, TimeProvider time)
    {
        if (response.Headers.RetryAfter is not { } retry) return null;
        var wait = retry.Delta ?? (retry.Date is { } date ? date - time.GetUtcNow() : null);
        return wait is { } w ? (int)Math.Clamp(Math.Ceiling(w.TotalSeconds), 0, 86_400) : null;
    }
}
