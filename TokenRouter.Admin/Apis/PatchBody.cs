using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;

namespace TokenRouter.Admin.Apis;

/// <summary>
/// A PATCH body read once for every resource: JSON only, an object, no field outside the updatable ones, and the names
/// present (an explicit <c>null</c> removes a limit, an absent field leaves it). Either a request or the answer to give.
/// </summary>
internal sealed record PatchBody<T>(T? Request, HashSet<string> Present, ProblemHttpResult? Problem, ValidationProblem? Invalid)
    where T : class
{
    public static async Task<PatchBody<T>> ReadAsync(HttpRequest httpRequest, string[] updatable, string resource,
        JsonSerializerOptions options, CancellationToken cancellationToken)
    {
        if (!httpRequest.HasJsonContentType())
        {
            return Fail(TypedResults.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType,
                title: "The request body must be JSON.", detail: "Send 'Content-Type: application/json'."));
        }
        try
        {
            using var document = await JsonDocument.ParseAsync(httpRequest.Body, default, cancellationToken);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return Fail(TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest,
                    title: "The request could not be read.", detail: "The body must be a JSON object."));
            }
            var present = document.RootElement.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            var unknown = present.Where(name => !updatable.Contains(name)).ToList();
            if (unknown.Count > 0)
            {
                return new PatchBody<T>(null, present, null, TypedResults.ValidationProblem(
                    unknown.ToDictionary(name => name, _ => new[] { $"Unknown field. Updatable: {string.Join(", ", updatable)}." }),
                    title: $"The {resource} update is not valid."));
            }
            return new PatchBody<T>(document.RootElement.Deserialize<T>(options)!, present, null, null);
        }
        catch (JsonException e)
        {
            return Fail(TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "The request could not be read.", detail: e.Message));
        }
    }

    private static PatchBody<T> Fail(ProblemHttpResult problem) => new(null, [], problem, null);
}
