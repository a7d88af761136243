using System.Net;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using Polly.Retry;
using TokenRouter.Admin.Data;

namespace TokenRouter.Admin.Alerts;

/// <summary>
/// Sends the outbox (<c>webhook_deliveries</c>): claims due rows, POSTs each signed body, and retries a failure with
/// jittered exponential back-off (Polly) up to <see cref="WebhookOptions.MaxAttempts"/> attempts. Every attempt's outcome
/// and the next attempt's time are written to the row first, so a restart (or another replica, once the row's lease
/// runs out) resumes where this one stopped.
/// </summary>
public sealed partial class WebhookDeliveryWorker(
    IServiceScopeFactory scopes,
    IHttpClientFactory httpClients,
    WebhookSecretProtector secrets,
    IOptions<WebhookOptions> options,
    TimeProvider time,
    ILogger<WebhookDeliveryWorker> logger) : BackgroundService
{
    /// <summary>
    /// Takes due rows of enabled webhooks that nobody holds, and holds them for the first attempt. SKIP LOCKED: two
    /// replicas scanning at once take different rows.
    /// </summary>
    private const string ClaimSql = """
        UPDATE webhook_deliveries SET locked_until = @locked_until
        WHERE id IN (
            SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE d.status = 'pending' AND w.enabled AND d.next_attempt_at <= @now
              AND (d.locked_until IS NULL OR d.locked_until <= @now)
            ORDER BY d.next_attempt_at
            LIMIT @limit
            FOR UPDATE OF d SKIP LOCKED)
        RETURNING id AS "Value"
        """;

    private const int MaxErrorLength = 500;
    private readonly WebhookOptions _settings = options.Value;
    private readonly HashSet<Task> _inFlight = [];

    // Sends at once are capped, not deliveries held: one waiting out its back-off must not starve healthy webhooks.
    private readonly SemaphoreSlim _sending = new(options.Value.MaxConcurrency);
    private int MaxHeld => _settings.MaxConcurrency * 32;

    /// <summary>An attempt's outcome: the status code (null when no response came) and what went wrong (null on 2xx).</summary>
    internal readonly record struct Attempt(int? StatusCode, string? Error)
    {
        public bool Succeeded => Error is null;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_settings.Enabled)
        {
            LogDisabled(logger);
            return;
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                _inFlight.RemoveWhere(t => t.IsCompleted);
                var free = Math.Min(MaxHeld - _inFlight.Count, _sending.CurrentCount);
                if (free > 0)
                {
                    foreach (var id in await ClaimAsync(free, stoppingToken))
                    {
                        _inFlight.Add(DeliverAsync(id, stoppingToken));
                    }
                }
                await Task.Delay(_settings.PollInterval, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Postgres away: nothing is lost (the rows stay pending); scan again later.
                LogScanFailed(logger, e.GetType().Name, e.Message);
                try
                {
                    await Task.Delay(_settings.RetryDelay, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        // Attempts in flight end with the host: their rows stay pending and are resumed once their lease runs out.
        await Task.WhenAll(_inFlight).ContinueWith(static _ => { }, TaskScheduler.Default);
    }

    /// <summary>How long a row stays with this replica after <paramref name="from"/>: the attempt plus a margin.</summary>
    private DateTimeOffset LeaseFrom(DateTimeOffset from) => from + _settings.Timeout + TimeSpan.FromSeconds(30);

    private async Task<List<Guid>> ClaimAsync(int limit, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AdminDbContext>();
        var now = time.GetUtcNow();
        return await db.Database.SqlQueryRaw<Guid>(ClaimSql,
                new NpgsqlParameter("locked_until", LeaseFrom(now).UtcDateTime),
                new NpgsqlParameter("now", now.UtcDateTime),
                new NpgsqlParameter("limit", limit))
            .ToListAsync(cancellationToken);
    }

    private async Task DeliverAsync(Guid id, CancellationToken stoppingToken)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<AdminDbContext>();
            var delivery = await db.WebhookDeliveries.SingleOrDefaultAsync(d => d.Id == id, stoppingToken);
            var webhook = delivery is null ? null
                : await db.Webhooks.AsNoTracking().SingleOrDefaultAsync(w => w.Id == delivery.WebhookId, stoppingToken);
            if (delivery is null || webhook is null)
            {
                return; // the webhook was deleted meanwhile (its deliveries with it)
            }
            var secret = secrets.TryUnprotect(webhook.SecretCiphertext);
            if (secret is null)
            {
                // Not worth retrying: the Data Protection key ring that encrypted it is not this one.
                await RecordAsync(db, delivery, new Attempt(null, "The webhook's secret cannot be decrypted with this Admin's Data Protection keys; set a new one."),
                    final: true, stoppingToken);
                return;
            }

            var remaining = Math.Max(1, _settings.MaxAttempts - delivery.Attempts);
            var pipeline = CreatePipeline(_settings, remaining, time, async (attempt, delay, ct) =>
            {
                // Before the pause: a restart during it resumes at the same time, not at once.
                var next = time.GetUtcNow() + delay;
                delivery.NextAttemptAt = next;
                delivery.LockedUntil = LeaseFrom(next);
                await db.SaveChangesAsync(ct);
                LogRetrying(logger, delivery.Id, delivery.Attempts, attempt.StatusCode, attempt.Error!, delay);
            });
            var client = httpClients.CreateClient(WebhookOptions.HttpClientName);
            var outcome = await pipeline.ExecuteAsync(async ct =>
            {
                var attempt = await SendOnceAsync(client, webhook, secret, delivery, ct);
                await RecordAsync(db, delivery, attempt, final: false, ct);
                return attempt;
            }, stoppingToken);
            if (!outcome.Succeeded)
            {
                await RecordAsync(db, delivery, outcome, final: true, stoppingToken);
                LogGaveUp(logger, delivery.Id, webhook.Id, delivery.Attempts, outcome.Error!);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: the row is resumed after its lease.
        }
        catch (Exception e)
        {
            LogDeliveryFailed(logger, id, e.GetType().Name, e.Message);
        }
    }

    /// <summary>
    /// Retries a failed attempt <paramref name="attempts"/> − 1 times: <see cref="WebhookOptions.RetryDelay"/> doubling to
    /// <see cref="WebhookOptions.MaxRetryDelay"/>, jittered; each attempt bounded by <see cref="WebhookOptions.Timeout"/>.
    /// </summary>
    internal static ResiliencePipeline<Attempt> CreatePipeline(WebhookOptions settings, int attempts, TimeProvider time,
        Func<Attempt, TimeSpan, CancellationToken, Task> onRetry)
    {
        var builder = new ResiliencePipelineBuilder<Attempt> { TimeProvider = time };
        if (attempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions<Attempt>
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result is { Succeeded: false }),
                MaxRetryAttempts = attempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = settings.RetryDelay,
                MaxDelay = settings.MaxRetryDelay,
                OnRetry = args => new ValueTask(onRetry(args.Outcome.Result, args.RetryDelay, args.Context.CancellationToken)),
            });
        }
        return builder.Build();
    }

    private async Task<Attempt> SendOnceAsync(HttpClient client, Webhook webhook, string secret, WebhookDelivery delivery,
        CancellationToken stoppingToken)
    {
        await _sending.WaitAsync(stoppingToken);
        try
        {
            return await SendAsync(client, webhook, secret, delivery, stoppingToken);
        }
        finally
        {
            _sending.Release();
        }
    }

    private async Task<Attempt> SendAsync(HttpClient client, Webhook webhook, string secret, WebhookDelivery delivery,
        CancellationToken stoppingToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(_settings.Timeout);
        using var request = new HttpRequestMessage(HttpMethod.Post, webhook.Url)
        {
            Content = new StringContent(delivery.Payload, Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation(WebhookSignature.Header,
            WebhookSignature.Create(secret, time.GetUtcNow().ToUnixTimeSeconds(), delivery.Payload));
        request.Headers.TryAddWithoutValidation(WebhookSignature.EventHeader, delivery.Event);
        request.Headers.TryAddWithoutValidation(WebhookSignature.DeliveryHeader, delivery.Id.ToString("D"));
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var code = (int)response.StatusCode;
            return response.IsSuccessStatusCode
                ? new Attempt(code, null)
                : new Attempt(code, $"The receiver answered {code} {ReasonOf(response.StatusCode)}.");
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
            return new Attempt(null, $"No response within {_settings.Timeout.TotalSeconds:0.###} s.");
        }
        catch (HttpRequestException e)
        {
            return new Attempt(null, Truncate(e.Message));
        }
    }

    private async Task RecordAsync(AdminDbContext db, WebhookDelivery delivery, Attempt attempt, bool final, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (!final)
        {
            delivery.Attempts++;
            delivery.LastStatusCode = attempt.StatusCode;
            delivery.LastError = attempt.Error is null ? null : Truncate(attempt.Error);
        }
        if (attempt.Succeeded)
        {
            delivery.Status = WebhookDelivery.Delivered;
            delivery.DeliveredAt = now;
            delivery.NextAttemptAt = null;
            delivery.LockedUntil = null;
        }
        else if (final || delivery.Attempts >= _settings.MaxAttempts)
        {
            delivery.Status = WebhookDelivery.Failed;
            delivery.LastError = Truncate(attempt.Error!);
            delivery.NextAttemptAt = null;
            delivery.LockedUntil = null;
        }
        await db.SaveChangesAsync(cancellationToken);
    }

    private static string ReasonOf(HttpStatusCode code) => Enum.IsDefined(code) ? code.ToString() : "";

    private static string Truncate(string text) => text.Length <= MaxErrorLength ? text : text[..MaxErrorLength];

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook delivery is disabled on this replica (Admin:Webhooks:Enabled=false)")]
    private static partial void LogDisabled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not scan the webhook outbox ({Error}: {Reason}); retrying")]
    private static partial void LogScanFailed(ILogger logger, string error, string reason);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Webhook delivery {DeliveryId} attempt {Attempt} failed (status {StatusCode}: {Reason}); retrying in {Delay}")]
    private static partial void LogRetrying(ILogger logger, Guid deliveryId, int attempt, int? statusCode, string reason, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Gave up webhook delivery {DeliveryId} to webhook {WebhookId} after {Attempts} attempts: {Reason}")]
    private static partial void LogGaveUp(ILogger logger, Guid deliveryId, Guid webhookId, int attempts, string reason);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Webhook delivery {DeliveryId} stopped ({Error}: {Reason}); it is resumed once its lease runs out")]
    private static partial void LogDeliveryFailed(ILogger logger, Guid deliveryId, string error, string reason);
}
