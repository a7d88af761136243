using TokenRouter.Gateway.Auth;
using TokenRouter.Tests.Infrastructure;
using TokenRouter.Tests.Limits;
using TokenRouter.Tests.Telemetry;
using Xunit.Abstractions;

namespace TokenRouter.Tests.Performance;

/// <summary>
/// Bytes allocated by one admission and its settlement on Redis (limits, quota and team budget, through the outage
/// circuit and the Lua scripts), the per-request Redis path of the data plane. Its awaits resume on other threads, so
/// unlike <see cref="AllocationBudgetTests"/> this counts the whole process (<see cref="ProcessAllocation"/>).
/// </summary>
[Collection(ProcessWideMetricsCollection.Name)]
public sealed class RedisAdmissionAllocationTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Warmup = 300;
    private const int Batch = 1000;

    // Measured 5,025-5,026 B per admission + settlement (Debug, three runs alone), a key in a team: two script calls,
    // their arguments and replies, the circuit breaker and the async chain around each (6,336-6,352 B with two async
    // layers more, 8,328-8,349 B while the breaker was Polly's).
    private const int BudgetBytes = 6_300;

    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.GetSharedAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task An_admission_and_its_settlement_on_redis_stay_within_their_allocation_budget()
    {
        await using var host = await LimitsHost.StartAsync(_server.ConnectionString);
        var team = new TeamIdentity(Guid.NewGuid().ToString("D"), "allocation", 1_000_000m, null, 1_000_000);
        var key = new ClientIdentity("key-" + Guid.NewGuid().ToString("N"), "allocation", new string('0', 64),
            1_000_000m, 1_000_000, 1_000_000_000, Team: team);

        var perRequest = await ProcessAllocation.PerOperationAsync(() => AdmitAndSettleAsync(host, key), Warmup, Batch);

        output.WriteLine($"admission + settlement on Redis: {perRequest:N0} B (budget {BudgetBytes:N0} B)");
        Assert.InRange(perRequest, 1, BudgetBytes);
    }

    private static async Task AdmitAndSettleAsync(LimitsHost host, ClientIdentity key)
    {
        var admission = await host.Controller.AdmitAsync(key, "gpt-4o", "openai", stream: false, 2_000, 100, CancellationToken.None);
        admission.Settle(0.001m, 600);
        await admission.DisposeAsync();
    }
}
