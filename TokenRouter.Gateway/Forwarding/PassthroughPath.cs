using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Where a passthrough request goes upstream: the provider's base URL joined with the client's path after <c>/v1/</c>.
/// The provider key travels with the request, so the path must never climb out of the base path. Kestrel decodes the
/// path once; <see cref="Uri"/> would decode <c>%2e</c> again and then remove the dot segments, so
/// <c>/v1/%252e%252e/stats</c> reached the provider host's <c>/stats</c>. Each segment is therefore decoded until it no
/// longer changes, and a dot segment or a backslash in any encoding is refused; the built URI is checked as well.
/// </summary>
public static class PassthroughPath
{
    private const int MaxDecodeRounds = 8;

    /// <param name="baseUri">The deployment's base URL (default: the provider's).</param>
    public static Uri Resolve(ProviderEndpoint provider, HttpRequest request, Uri? baseUri = null)
    {
        baseUri ??= provider.BaseUri!;
        request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase, out var rest);
        if (!IsSafe(rest.Value)) throw Refused();

        // OpenAI-style base URLs already end at the API root (…/v1, the way chat joins chat/completions to them);
        // Anthropic's do not (chat joins v1/messages), so v1/ is put back unless the base already has it.
        var prefix = provider.Kind == ProviderKind.Anthropic && !baseUri.AbsolutePath.EndsWith("/v1/", StringComparison.OrdinalIgnoreCase)
            ? "v1/"
            : "";
        // Concatenated, not resolved: a relative reference with a ':' in its first segment would read as a scheme.
        var uri = new Uri(baseUri.AbsoluteUri + prefix + rest.ToUriComponent().TrimStart('/') + request.QueryString.ToUriComponent());
        if (Uri.Compare(uri, baseUri, UriComponents.SchemeAndServer, UriFormat.UriEscaped, StringComparison.OrdinalIgnoreCase) != 0
            || !uri.AbsolutePath.StartsWith(baseUri.AbsolutePath, StringComparison.Ordinal))
            throw Refused();
        return uri;
    }

    /// <summary>True when no segment of <paramref name="path"/> is, or decodes to, <c>.</c> or <c>..</c>, and none holds
    /// a backslash or a control character, however many times it was percent-encoded.</summary>
    public static bool IsSafe(string? path)
    {
        // The gateway's own paths (/v1/chat/completions) have nothing to decode: one vectorized scan.
        if (string.IsNullOrEmpty(path) || path.AsSpan().IndexOfAny(Suspect) < 0) return true;
        foreach (var raw in path.Split('/'))
        {
            var segment = raw;
            for (var round = 0; round < MaxDecodeRounds && segment.Contains('%'); round++)
            {
                var decoded = Uri.UnescapeDataString(segment);
                if (decoded == segment) break;
                segment = decoded;
            }
            if (HasEscape(segment)) return false; // encoded too deep, or bytes that are not UTF-8 (%c0%ae): not to be trusted
            foreach (var part in segment.Split('/', '\\'))
            {
                if (part is "." or "..") return false;
            }
            if (segment.Contains('\\') || segment.AsSpan().ContainsAnyInRange('\0', '\u001f')) return false;
        }
        return true;
    }

    /// <summary>The path the client sent, before Kestrel decoded it and removed its dot segments: a request for
    /// <c>/v1/../stats</c> must be refused as such, not served as <c>/stats</c>.</summary>
    public static bool RawTargetIsSafe(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw) || raw[0] != '/') return IsSafe(context.Request.Path.Value);
        var query = raw.IndexOf('?');
        return IsSafe(query < 0 ? raw : raw[..query]);
    }

    private static readonly SearchValues<char> Suspect = SearchValues.Create(".%\\");

    private static bool HasEscape(string segment)
    {
        for (var i = segment.IndexOf('%'); i >= 0 && i + 2 < segment.Length; i = segment.IndexOf('%', i + 1))
        {
            if (char.IsAsciiHexDigit(segment[i + 1]) && char.IsAsciiHexDigit(segment[i + 2])) return true;
        }
        return false;
    }

    public static ApiError Refused() =>
        new(StatusCodes.Status400BadRequest, "invalid_request_error",
            "The request path has a '.' or '..' segment, a backslash or a control character (in some encoding); such paths are not forwarded.",
            "invalid_path");
}
