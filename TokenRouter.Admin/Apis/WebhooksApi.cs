using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using TokenRouter.Admin.Alerts;
using TokenRouter.Admin.Data;
using JsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace TokenRouter.Admin.Apis;

/// <summary>
/// <c>/admin/webhooks</c>: receivers of budget alerts (50/80/100 % of a key's or team's period budget, a key stopped by
/// its budget), their signing secrets (shown once, stored encrypted) and the state of their deliveries.
/// </summary>
public static class WebhooksApi
{
    public const int MinSecretLength = 16, MaxSecretLength = 200, MaxUrlLength = 2000;
    public const int DefaultDeliveryLimit = 50, MaxDeliveryLimit = 500;

    private static readonly string[] UpdatableFields = ["url", "enabled", "events"];

    public static RouteGroupBuilder MapWebhooksApi(this RouteGroupBuilder admin)
    {
        var webhooks = admin.MapGroup("/webhooks").WithTags("Webhooks");
        webhooks.MapPost("", CreateAsync).WithName("CreateWebhook")
            .WithSummary("Registers a budget alert webhook; its signing secret is shown once, in this response.");
        webhooks.MapGet("", ListAsync).WithName("ListWebhooks").WithSummary("Lists webhooks (without secrets).");
        webhooks.MapGet("/{id:guid}", GetAsync).WithName("GetWebhook").WithSummary("A webhook (without its secret).");
        webhooks.MapPatch("/{id:guid}", UpdateAsync).WithName("UpdateWebhook")
            .WithSummary("Changes url, enabled or events; only the fields sent change.")
            .Accepts<UpdateWebhookRequest>("application/json")
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        webhooks.MapDelete("/{id:guid}", DeleteAsync).WithName("DeleteWebhook")
            .WithSummary("Deletes a webhook and its delivery history.");
        webhooks.MapGet("/{id:guid}/deliveries", DeliveriesAsync).WithName("ListWebhookDeliveries")
            .WithSummary("The webhook's most recent deliveries: event, subject, threshold, attempts, last status, next attempt.");
        return admin;
    }

    internal static async Task<Results<Created<CreatedWebhookResponse>, ValidationProblem>> CreateAsync(
        CreateWebhookRequest request, AdminDbContext db, WebhookSecretProtector protector, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var errors = Validate(request.Url, request.Events, present: new HashSet<string>(["url", "events"], StringComparer.Ordinal));
        if (request.Secret is { } supplied && (supplied.Length is < MinSecretLength or > MaxSecretLength || supplied.Any(char.IsWhiteSpace)))
        {
            errors["secret"] = [$"The secret must be {MinSecretLength}–{MaxSecretLength} characters without spaces (absent: one is generated)."];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The webhook request is not valid.");
        }
        var now = time.GetUtcNow();
        var secret = request.Secret ?? WebhookSecretProtector.Generate();
        var webhook = new Webhook
        {
            Id = Guid.CreateVersion7(now),
            Url = request.Url!.Trim(),
            Events = WebhookEventList.Join(request.Events),
            SecretCiphertext = protector.Protect(secret),
            Enabled = request.Enabled ?? true,
            CreatedAt = new DateTimeOffset(now.UtcTicks - now.UtcTicks % 10, TimeSpan.Zero),
        };
        db.Webhooks.Add(webhook);
        await db.SaveChangesAsync(cancellationToken);
        var view = WebhookResponse.From(webhook);
        return TypedResults.Created($"/admin/webhooks/{webhook.Id}",
            new CreatedWebhookResponse(view.Id, view.Url, view.Events, view.Enabled, view.CreatedAt, secret));
    }

    internal static async Task<Ok<WebhookResponse[]>> ListAsync(AdminDbContext db, CancellationToken cancellationToken)
    {
        var webhooks = await db.Webhooks.AsNoTracking().OrderBy(w => w.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(webhooks.Select(WebhookResponse.From).ToArray());
    }

    internal static async Task<Results<Ok<WebhookResponse>, NotFound>> GetAsync(Guid id, AdminDbContext db, CancellationToken cancellationToken) =>
        await db.Webhooks.AsNoTracking().SingleOrDefaultAsync(w => w.Id == id, cancellationToken) is { } webhook
            ? TypedResults.Ok(WebhookResponse.From(webhook))
            : TypedResults.NotFound();

    internal static async Task<Results<Ok<WebhookResponse>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateAsync(
        Guid id, HttpRequest httpRequest, AdminDbContext db, IOptions<JsonOptions> jsonOptions, CancellationToken cancellationToken)
    {
        var body = await PatchBody<UpdateWebhookRequest>.ReadAsync(httpRequest, UpdatableFields, "webhook",
            jsonOptions.Value.SerializerOptions, cancellationToken);
        if (body.Problem is { } problem) return problem;
        if (body.Invalid is { } invalid) return invalid;
        var (request, present) = (body.Request!, body.Present);

        var webhook = await db.Webhooks.SingleOrDefaultAsync(w => w.Id == id, cancellationToken);
        if (webhook is null)
        {
            return TypedResults.NotFound();
        }
        var errors = Validate(request.Url, request.Events, present);
        if (present.Contains("enabled") && request.Enabled is null)
        {
            errors["enabled"] = ["Must be true or false."];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The webhook update is not valid.");
        }
        if (present.Contains("url")) webhook.Url = request.Url!.Trim();
        if (present.Contains("enabled")) webhook.Enabled = request.Enabled!.Value;
        if (present.Contains("events")) webhook.Events = WebhookEventList.Join(request.Events);
        await db.SaveChangesAsync(cancellationToken);
        return TypedResults.Ok(WebhookResponse.From(webhook));
    }

    internal static async Task<Results<NoContent, NotFound>> DeleteAsync(Guid id, AdminDbContext db, CancellationToken cancellationToken) =>
        await db.Webhooks.Where(w => w.Id == id).ExecuteDeleteAsync(cancellationToken) > 0
            ? TypedResults.NoContent()
            : TypedResults.NotFound();

    internal static async Task<Results<Ok<WebhookDeliveryResponse[]>, NotFound, ValidationProblem>> DeliveriesAsync(
        Guid id, AdminDbContext db, CancellationToken cancellationToken, int? limit = null)
    {
        if (limit is < 1 or > MaxDeliveryLimit)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = [$"Must be between 1 and {MaxDeliveryLimit}."] });
        }
        if (!await db.Webhooks.AnyAsync(w => w.Id == id, cancellationToken))
        {
            return TypedResults.NotFound();
        }
        var deliveries = await db.WebhookDeliveries.AsNoTracking().Where(d => d.WebhookId == id)
            .OrderByDescending(d => d.CreatedAt).ThenByDescending(d => d.Id).Take(limit ?? DefaultDeliveryLimit)
            .ToListAsync(cancellationToken);
        return TypedResults.Ok(deliveries.Select(WebhookDeliveryResponse.From).ToArray());
    }

    internal static Dictionary<string, string[]> Validate(string? url, string[]? events, IReadOnlySet<string> present)
    {
        var errors = new Dictionary<string, string[]>();
        if (present.Contains("url"))
        {
            if (string.IsNullOrWhiteSpace(url) || url.Trim().Length > MaxUrlLength
                || !Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
                || string.IsNullOrEmpty(uri.Host) || !string.IsNullOrEmpty(uri.UserInfo))
            {
                errors["url"] = [$"An absolute http or https URL (at most {MaxUrlLength} characters, no user:password@) is required."];
            }
        }
        if (present.Contains("events") && WebhookEventList.Validate(events) is { } eventsError)
        {
            errors["events"] = [eventsError];
        }
        return errors;
    }
}
