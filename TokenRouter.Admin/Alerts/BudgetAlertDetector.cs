using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.Quotas;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Alerts;

/// <summary>The JSON body of a webhook delivery.</summary>
public sealed record WebhookPayload(
    string Event,
    WebhookSubject Subject,
    int ThresholdPercent,
    decimal SpentUsd,
    decimal BudgetUsd,
    DateTimeOffset? PeriodStart,
    DateTimeOffset? PeriodEnd,
    DateTimeOffset OccurredAt,
    Guid DeliveryId)
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };
}

public sealed record WebhookSubject(string Type, Guid Id, string Name);

/// <summary>
/// After a ledger batch commits: the period spend of the keys it touched and of their teams, from the ledger (the same
/// sums as the reports), and an alert for each threshold newly crossed. An alert row is unique per event, subject,
/// period and threshold, so it is raised once however often (or by however many replicas) it is seen; raising it writes
/// one outbox row per interested webhook in the same transaction.
/// </summary>
public sealed partial class BudgetAlertDetector(AdminDbContext db, BudgetLedger ledger, TimeProvider time,
    ILogger<BudgetAlertDetector> logger)
{
    private const string InsertAlertSql = """
        INSERT INTO budget_alerts (id, event, subject_type, subject_id, period_start, threshold, spent_usd, budget_usd, created_at)
        VALUES (@id, @event, @subject_type, @subject_id, @period_start, @threshold, @spent_usd, @budget_usd, @created_at)
        ON CONFLICT (event, subject_type, subject_id, period_start, threshold) DO NOTHING
        """;

    private readonly record struct Candidate(string Event, WebhookSubject Subject, int Threshold, decimal Spent, decimal Budget,
        BudgetPeriod? Period);

    /// <summary>Returns how many alerts were raised (not how many deliveries).</summary>
    public async Task<int> DetectAsync(IReadOnlyCollection<Guid> keyIds, CancellationToken cancellationToken)
    {
        if (keyIds.Count == 0)
        {
            return 0;
        }
        var keys = await db.ApiKeys.AsNoTracking().Where(k => keyIds.Contains(k.Id)).ToListAsync(cancellationToken);
        var candidates = new List<Candidate>();
        foreach (var key in keys.Where(k => k.QuotaUsd > 0))
        {
            var period = ledger.CurrentPeriod(key.BudgetDuration);
            var spent = await ledger.SpentAsync([key.Id], period, cancellationToken);
            var subject = new WebhookSubject(WebhookEvents.KeySubject, key.Id, key.Name);
            AddCrossed(candidates, subject, spent, key.QuotaUsd!.Value, period);
            if (spent >= key.QuotaUsd)
            {
                candidates.Add(new Candidate(WebhookEvents.KeyDisabledByBudget, subject, 100, spent, key.QuotaUsd.Value, period));
            }
        }

        var teamIds = keys.Where(k => k.TeamId is not null).Select(k => k.TeamId!.Value).Distinct().ToList();
        var teams = await db.Teams.AsNoTracking().Where(t => teamIds.Contains(t.Id) && t.BudgetUsd > 0).ToListAsync(cancellationToken);
        foreach (var team in teams)
        {
            var period = ledger.CurrentPeriod(team.BudgetDuration);
            // The team report's sum: its current keys' spend in the period.
            var members = await db.ApiKeys.AsNoTracking().Where(k => k.TeamId == team.Id).Select(k => k.Id).ToListAsync(cancellationToken);
            var spent = await ledger.SpentAsync(members, period, cancellationToken);
            AddCrossed(candidates, new WebhookSubject(WebhookEvents.TeamSubject, team.Id, team.Name), spent, team.BudgetUsd!.Value, period);
        }
        return candidates.Count == 0 ? 0 : await RaiseAsync(candidates, cancellationToken);
    }

    private static void AddCrossed(List<Candidate> candidates, WebhookSubject subject, decimal spent, decimal budget, BudgetPeriod? period)
    {
        foreach (var percent in WebhookEvents.ThresholdPercents)
        {
            if (spent >= budget * percent / 100m)
            {
                candidates.Add(new Candidate(WebhookEvents.BudgetThreshold, subject, percent, spent, budget, period));
            }
        }
    }

    private async Task<int> RaiseAsync(List<Candidate> candidates, CancellationToken cancellationToken)
    {
        var webhooks = await db.Webhooks.AsNoTracking().Where(w => w.Enabled).Select(w => new { w.Id, w.Events })
            .ToListAsync(cancellationToken);
        var strategy = db.Database.CreateExecutionStrategy();
        var raised = await strategy.ExecuteAsync(async ct =>
        {
            db.ChangeTracker.Clear();
            var now = time.GetUtcNow();
            var raised = new List<Candidate>();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            foreach (var c in candidates)
            {
                var alertId = Guid.CreateVersion7(now);
                var inserted = await db.Database.ExecuteSqlRawAsync(InsertAlertSql,
                [
                    new NpgsqlParameter("id", alertId),
                    new NpgsqlParameter("event", c.Event),
                    new NpgsqlParameter("subject_type", c.Subject.Type),
                    new NpgsqlParameter("subject_id", c.Subject.Id),
                    new NpgsqlParameter("period_start", (c.Period?.Start ?? BudgetAlert.LifetimePeriodStart).UtcDateTime),
                    new NpgsqlParameter("threshold", c.Threshold),
                    new NpgsqlParameter("spent_usd", c.Spent),
                    new NpgsqlParameter("budget_usd", c.Budget),
                    new NpgsqlParameter("created_at", now.UtcDateTime),
                ], ct);
                if (inserted == 0)
                {
                    continue; // raised before: by an earlier batch or another replica
                }
                raised.Add(c);
                foreach (var webhook in webhooks.Where(w => Wants(w.Events, c.Event)))
                {
                    var deliveryId = Guid.CreateVersion7(now);
                    var payload = new WebhookPayload(c.Event, c.Subject, c.Threshold, c.Spent, c.Budget.Trimmed(),
                        c.Period?.Start, c.Period?.End, now, deliveryId);
                    db.WebhookDeliveries.Add(new WebhookDelivery
                    {
                        Id = deliveryId,
                        WebhookId = webhook.Id,
                        AlertId = alertId,
                        Event = c.Event,
                        SubjectType = c.Subject.Type,
                        SubjectId = c.Subject.Id,
                        Threshold = c.Threshold,
                        PeriodStart = c.Period?.Start,
                        Payload = JsonSerializer.Serialize(payload, WebhookPayload.Json),
                        Status = WebhookDelivery.Pending,
                        NextAttemptAt = now,
                        CreatedAt = now,
                    });
                }
            }
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return raised;
        }, cancellationToken);

        foreach (var c in raised)
        {
            LogRaised(logger, c.Event, c.Subject.Type, c.Subject.Id, c.Threshold, c.Spent, c.Budget);
        }
        return raised.Count;
    }

    internal static bool Wants(string? events, string @event) =>
        events is null || events.Split(',').Contains(@event, StringComparer.Ordinal);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Budget alert {Event} for {SubjectType} {SubjectId}: {Threshold} % ({SpentUsd} of {BudgetUsd} USD)")]
    private static partial void LogRaised(ILogger logger, string @event, string subjectType, Guid subjectId, int threshold,
        decimal spentUsd, decimal budgetUsd);
}
