using TokenRouter.Gateway.Routing;

namespace TokenRouter.Tests.Routing;

public sealed class WeightedOrderBalancerTests
{
    private static readonly DeploymentInfo[] Four = [new("a"), new("b"), new("c"), new("d")];

    [Fact]
    public void One_prefix_always_gets_the_same_order_and_every_index_once()
    {
        var first = WeightedOrderBalancer.Order("key-1", "prefix-1", Four, _ => true);
        var again = WeightedOrderBalancer.Order("key-1", "prefix-1", Four, _ => true);

        Assert.Equal(first, again);
        Assert.Equal([0, 1, 2, 3], first.Order());
    }

    [Fact]
    public void Unavailable_deployments_go_last_in_their_own_relative_order()
    {
        for (var p = 0; p < 50; p++)
        {
            var all = WeightedOrderBalancer.Order("k", $"p{p}", Four, _ => true);
            var order = WeightedOrderBalancer.Order("k", $"p{p}", Four, i => i != 1 && i != 2);

            Assert.Equal(all.Where(i => i is 0 or 3), order.Take(2));
            Assert.Equal(all.Where(i => i is 1 or 2), order.Skip(2));
        }
    }

    [Fact]
    public void Many_prefixes_spread_over_the_deployments_in_proportion_to_their_weights()
    {
        DeploymentInfo[] weighted = [new("small", 1), new("big", 3)];
        var even = new int[4];
        var uneven = new int[2];
        for (var p = 0; p < 4000; p++)
        {
            even[WeightedOrderBalancer.Order("k", $"prefix-{p}", Four, _ => true)[0]]++;
            uneven[WeightedOrderBalancer.Order("k", $"prefix-{p}", weighted, _ => true)[0]]++;
        }

        Assert.All(even, n => Assert.InRange(n, 850, 1150));
        Assert.InRange(uneven[1] / (double)uneven[0], 2.6, 3.4);
    }

    [Fact]
    public void Scopes_do_not_share_a_choice_by_construction()
    {
        var differs = Enumerable.Range(0, 100).Count(p =>
            WeightedOrderBalancer.Order("tenant-a", $"p{p}", Four, _ => true)[0] != WeightedOrderBalancer.Order("tenant-b", $"p{p}", Four, _ => true)[0]);

        Assert.InRange(differs, 50, 100); // independent draws: ~75 of 100 differ
    }
}
