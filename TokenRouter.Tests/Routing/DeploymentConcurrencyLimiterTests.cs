using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Tests.Routing;

public sealed class DeploymentConcurrencyLimiterTests
{
    /// <summary>A deployment of provider openai as the callers describe it.</summary>
    private sealed record Deployment(string Id, int? Max);

    private static bool TryAcquire(DeploymentConcurrencyLimiter limiter, Deployment d, out ConcurrencySlot? slot) =>
        limiter.TryAcquire("openai", d.Id, d.Max, out slot);

    private static bool IsSaturated(DeploymentConcurrencyLimiter limiter, Deployment d) => limiter.IsSaturated(d.Id, d.Max);

    [Fact]
    public void Slots_are_taken_up_to_the_cap_and_a_released_one_can_be_taken_again()
    {
        var limiter = new DeploymentConcurrencyLimiter();
        var d = new Deployment("a", 2);

        Assert.True(TryAcquire(limiter, d, out var first));
        Assert.False(IsSaturated(limiter, d));
        Assert.True(TryAcquire(limiter, d, out var second));
        Assert.True(IsSaturated(limiter, d));
        Assert.False(TryAcquire(limiter, d, out var refused));
        Assert.Null(refused);
        Assert.Equal(2, limiter.InFlight("a"));

        first!.Dispose();
        Assert.Equal(1, limiter.InFlight("a"));
        Assert.False(IsSaturated(limiter, d));
        Assert.True(TryAcquire(limiter, d, out var third));
        second!.Dispose();
        third!.Dispose();
        Assert.Equal(0, limiter.InFlight("a"));
    }

    [Fact]
    public void A_slot_is_released_once_however_often_it_is_disposed_so_the_count_never_goes_negative()
    {
        var limiter = new DeploymentConcurrencyLimiter();
        var d = new Deployment("a", 1);
        Assert.True(TryAcquire(limiter, d, out var slot));

        slot!.Dispose();
        slot.Dispose();
        Parallel.For(0, 100, _ => slot.Dispose());

        Assert.True(slot.Released);
        Assert.Equal(0, limiter.InFlight("a"));
        Assert.True(TryAcquire(limiter, d, out var again));
        Assert.Equal(1, limiter.InFlight("a"));
        again!.Dispose();
    }

    [Fact]
    public void A_deployment_without_a_cap_is_never_saturated_and_gets_no_slot_to_give_back()
    {
        var limiter = new DeploymentConcurrencyLimiter();
        var d = new Deployment("free", null);

        for (var i = 0; i < 1000; i++)
        {
            Assert.True(TryAcquire(limiter, d, out var slot));
            Assert.Null(slot);
        }
        Assert.False(IsSaturated(limiter, d));
        Assert.Equal(0, limiter.InFlight("free"));
    }

    [Fact]
    public void Concurrent_takers_never_exceed_the_cap_and_all_slots_come_back()
    {
        var limiter = new DeploymentConcurrencyLimiter();
        var d = new Deployment("a", 3);
        var peak = 0;
        Parallel.For(0, 2000, _ =>
        {
            if (!TryAcquire(limiter, d, out var slot)) return;
            using (slot)
            {
                var now = limiter.InFlight("a");
                int seen;
                while ((seen = Volatile.Read(ref peak)) < now && Interlocked.CompareExchange(ref peak, now, seen) != seen)
                {
                }
            }
        });

        Assert.InRange(peak, 1, 3);
        Assert.Equal(0, limiter.InFlight("a"));
    }

    [Fact]
    public void Deployments_are_counted_by_id_so_a_snapshot_swapped_meanwhile_shares_the_count()
    {
        var limiter = new DeploymentConcurrencyLimiter();
        Assert.True(TryAcquire(limiter, new Deployment("a", 1), out var slot));

        // Admin republished the provider's deployments: a new object, the same deployment.
        Assert.False(TryAcquire(limiter, new Deployment("a", 1), out _));
        Assert.True(TryAcquire(limiter, new Deployment("b", 1), out var other));
        slot!.Dispose();
        other!.Dispose();
    }

    [Fact]
    public void The_inflight_gauge_reports_each_capped_deployment_by_provider_and_id()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var limiter = new DeploymentConcurrencyLimiter(services.GetRequiredService<IMeterFactory>());
        var seen = new List<(int Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == GatewayMetrics.MeterName && instrument.Name == "tokenrouter.deployment.inflight") l.EnableMeasurementEvents(instrument);
        };
        // Gateways of other tests in this process report their capped deployments to the same meter name: only this id counts.
        var id = "a-" + Guid.NewGuid().ToString("N")[..8];
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            var map = tags.ToArray().ToDictionary(t => t.Key, t => t.Value);
            if (Equals(map.GetValueOrDefault("deployment"), id)) lock (seen) seen.Add((value, map));
        });
        listener.Start();
        Assert.True(TryAcquire(limiter, new Deployment(id, 4), out var one));
        Assert.True(TryAcquire(limiter, new Deployment(id, 4), out var two));

        listener.RecordObservableInstruments();

        var (value, tags) = Assert.Single(seen);
        Assert.Equal(2, value);
        Assert.Equal("openai", tags["provider"]);
        Assert.Equal(id, tags["deployment"]);
        one!.Dispose();
        two!.Dispose();
    }
}
