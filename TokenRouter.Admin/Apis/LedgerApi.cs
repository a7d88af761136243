using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.Ledger;
using TokenRouter.Contracts;

namespace TokenRouter.Admin.Apis;

/// <summary><c>/admin/ledger</c>: how far the usage ledger is behind the stream, and the entries it had to park.</summary>
public static class LedgerApi
{
    public const int MaxDeadLetters = 1000;

    public static RouteGroupBuilder MapLedgerApi(this RouteGroupBuilder admin)
    {
        var ledger = admin.MapGroup("/ledger").WithTags("Ledger");
        ledger.MapGet("", GetStatusAsync).WithName("GetLedgerStatus")
            .WithSummary("The usage stream's backlog (undelivered + pending) and what this Admin has stored since it started.");
        ledger.MapGet("/dead-letters", ListDeadLettersAsync).WithName("ListDeadLetters")
            .WithSummary("Usage entries that could not be stored (newest first), with the reason and their raw fields.");
        return admin;
    }

    internal static async Task<Ok<LedgerStatusResponse>> GetStatusAsync(
        UsageLedgerStatus status, IOptions<UsageLedgerOptions> options, IConnectionMultiplexer redis, AdminDbContext db,
        TimeProvider time, CancellationToken cancellationToken)
    {
        var backlog = status.LastBacklog;
        if (redis.IsConnected)
        {
            try
            {
                backlog = await status.RefreshAsync(time.GetUtcNow());
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // Report the last observation.
            }
        }

        var deadLetters = await db.UsageDeadLetters.LongCountAsync(cancellationToken);
        return TypedResults.Ok(new LedgerStatusResponse(
            options.Value.Enabled, RedisContract.UsageStream, RedisContract.UsageConsumerGroup,
            options.Value.ResolvedConsumerName, backlog?.StreamLength, backlog?.Undelivered, backlog?.Pending,
            backlog?.Total, backlog?.ObservedAt, status.Stored, status.Duplicates, status.DeadLettered, deadLetters));
    }

    internal static async Task<Results<Ok<DeadLetterResponse[]>, ValidationProblem>> ListDeadLettersAsync(
        AdminDbContext db, [FromQuery(Name = "limit")] int? limit, CancellationToken cancellationToken)
    {
        var take = limit ?? 100;
        if (take is < 1 or > MaxDeadLetters)
        {
            return TypedResults.ValidationProblem(
                new Dictionary<string, string[]> { ["limit"] = [$"Must be between 1 and {MaxDeadLetters}."] });
        }

        var rows = await db.UsageDeadLetters.AsNoTracking()
            .OrderByDescending(d => d.ReceivedAt).ThenByDescending(d => d.StreamId).Take(take)
            .ToListAsync(cancellationToken);
        return TypedResults.Ok(rows.Select(d => new DeadLetterResponse(
            d.StreamId, d.RequestId, d.Reason, ParseFields(d.Fields), d.ReceivedAt)).ToArray());
    }

    private static JsonElement ParseFields(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }
}
