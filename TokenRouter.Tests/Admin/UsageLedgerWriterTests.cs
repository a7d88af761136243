using Microsoft.Extensions.DependencyInjection;
using TokenRouter.Admin.Data;
using TokenRouter.Admin.Ledger;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

public sealed class UsageLedgerWriterTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    [Fact]
    public async Task Row_postgres_rejects_is_parked_and_the_rest_of_its_batch_is_stored()
    {
        var good = Row("writer-good");
        var rejected = Row("writer-rejected");
        rejected.Model = "nul\0model"; // the parser refuses this; the writer must cope anyway

        var result = await WriteAsync([good, rejected], ["1-0", "1-1"]);

        Assert.Equal(1, result.Inserted);
        var parked = Assert.Single(result.DeadLetters);
        Assert.Equal("1-1", parked.StreamId);
        Assert.Contains("Postgres rejected the row", parked.Reason);
        Assert.Equal(1, await ScalarAsync(fixture.DatabaseConnectionString, "SELECT COUNT(*) FROM usage_records WHERE request_id = 'writer-good'"));
        Assert.Equal(1, await ScalarAsync(fixture.DatabaseConnectionString, "SELECT COUNT(*) FROM usage_dead_letters WHERE stream_id = '1-1'"));
    }

    [Fact]
    public async Task Writing_a_request_id_again_inserts_nothing_and_counts_a_duplicate()
    {
        await WriteAsync([Row("writer-again")], ["2-0"]);

        var second = await WriteAsync([Row("writer-again")], ["2-1"]);

        Assert.Equal(0, second.Inserted);
        Assert.Equal(1, second.Duplicates);
        Assert.Equal(1, await ScalarAsync(fixture.DatabaseConnectionString, "SELECT COUNT(*) FROM usage_records WHERE request_id = 'writer-again'"));
    }

    private async Task<LedgerWriteResult> WriteAsync(UsageRecord[] rows, string[] streamIds)
    {
        await using var scope = fixture.Factory.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<UsageLedgerWriter>()
            .WriteAsync(rows, [], streamIds, DateTimeOffset.UtcNow, CancellationToken.None);
    }

    private static UsageRecord Row(string requestId) => new()
    {
        RequestId = requestId,
        Model = "gpt-4o",
        Provider = "openai",
        PromptTokens = 10,
        CompletionTokens = 1,
        CostUsd = 0.001m,
        CreatedAt = DateTimeOffset.UtcNow,
    };
}
