using Microsoft.Extensions.Time.Testing;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Routing;
using static TokenRouter.Tests.Routing.BalancerTestKit;

namespace TokenRouter.Tests.Routing;

public sealed class CacheAwareBalancerTests
{
    [Fact]
    public void Turns_of_one_conversation_stay_on_one_deployment()
    {
        var balancer = Local();
        for (var c = 0; c < 20; c++)
        {
            var firsts = new List<int>();
            for (var turn = 0; turn < 6; turn++)
            {
                var request = Request($"c{c}", turn);
                var first = balancer.First(request);
                balancer.Served(request, first);
                firsts.Add(first);
            }
            Assert.Single(firsts.Distinct());
        }
    }

    [Fact]
    public void A_conversation_follows_the_deployment_that_served_its_previous_turn()
    {
        var balancer = Local();
        var first = balancer.First(Request("c", 0));
        var failedOverTo = (first + 1) % 4;
        balancer.Served(Request("c", 0), failedOverTo);

        for (var turn = 1; turn < 5; turn++)
        {
            var request = Request("c", turn);
            Assert.Equal(failedOverTo, balancer.First(request));
            balancer.Served(request, failedOverTo);
        }
    }

    [Fact]
    public void New_conversations_spread_evenly_over_equal_weights()
    {
        var balancer = Local();
        const int conversations = 4000;
        var counts = new int[4];
        for (var c = 0; c < conversations; c++) counts[balancer.First(Request($"c{c}", 0))]++;

        foreach (var count in counts) Assert.InRange(count / (double)conversations, 0.22, 0.28);
    }

    [Fact]
    public void New_conversations_spread_in_proportion_to_weights()
    {
        DeploymentInfo[] weighted = [new("light", 1), new("medium", 2), new("heavy", 3), new("heaviest", 4)];
        var balancer = Local();
        const int conversations = 5000;
        var counts = new int[4];
        for (var c = 0; c < conversations; c++) counts[balancer.First(Request($"c{c}", 0), weighted)]++;

        for (var i = 0; i < 4; i++) Assert.InRange(counts[i] / (double)conversations, weighted[i].Weight / 10 - 0.025, weighted[i].Weight / 10 + 0.025);
    }

    [Theory]
    [InlineData("x-claude-code-session-id")]
    [InlineData("session_id")]
    [InlineData("session-id")]
    [InlineData("conversation_id")]
    [InlineData("x-opencode-session")]
    public void A_coding_agents_session_header_beats_the_prefix(string header)
    {
        var balancer = Local();
        // The conversation's prefix is pinned to one deployment…
        var prefixAt = (balancer.First(Request("c", 0)) + 1) % 4;
        balancer.Served(Request("c", 0), prefixAt);
        // …and its session, by an earlier request of the same session, to another.
        var sessionAt = (prefixAt + 1) % 4;
        balancer.Served(Request("other", 0, headers: Header(header, "session-42")), sessionAt);

        Assert.Equal(sessionAt, balancer.First(Request("c", 1, headers: Header(header, "session-42"))));
        Assert.Equal(prefixAt, balancer.First(Request("c", 1)));
    }

    [Fact]
    public void A_clients_prompt_cache_key_pins_its_requests_but_the_gateways_derived_key_does_not()
    {
        var balancer = Local();
        var keyAt = (balancer.First(Request("x", 0, system: ShortSystem)) + 1) % 4;
        balancer.Served(Request("x", 0, system: ShortSystem, promptCacheKey: "client-session-7"), keyAt);
        balancer.Served(Request("x", 0, system: ShortSystem, promptCacheKey: "tr-0123456789abcdef0123456789abcdef-0123456789abcdef"), keyAt);

        for (var c = 0; c < 50; c++)
        {
            Assert.Equal(keyAt, balancer.First(Request($"y{c}", 0, system: ShortSystem, promptCacheKey: "client-session-7")));
            var unpinned = Request($"y{c}", 0, system: ShortSystem);
            Assert.Equal(Local().First(unpinned),
                balancer.First(Request($"y{c}", 0, system: ShortSystem, promptCacheKey: "tr-0123456789abcdef0123456789abcdef-0123456789abcdef")));
        }
    }

    [Fact]
    public void A_prefix_too_short_to_be_cached_is_not_pinned()
    {
        var balancer = Local();
        var rendezvous = balancer.First(Request("c", 0, system: ShortSystem));
        balancer.Served(Request("c", 0, system: ShortSystem), (rendezvous + 1) % 4);

        Assert.Equal(rendezvous, balancer.First(Request("c", 1, system: ShortSystem)));
    }

    [Fact]
    public void An_unavailable_deployment_hands_its_conversations_to_their_next_rendezvous_choice_and_the_rest_stay()
    {
        var balancer = Local();
        var before = new Dictionary<int, int[]>();
        for (var c = 0; c < 400; c++)
        {
            var request = Request($"c{c}", 1);
            before[c] = balancer.Order(request);
            balancer.Served(request, before[c][0]);
        }

        var moved = 0;
        for (var c = 0; c < 400; c++)
        {
            var after = balancer.Order(Request($"c{c}", 2), isAvailable: i => i != 2);
            Assert.Equal(2, after[^1]);
            if (before[c][0] == 2)
            {
                Assert.Equal(before[c][1], after[0]);
                moved++;
            }
            else
            {
                Assert.Equal(before[c][0], after[0]);
            }
        }
        Assert.InRange(moved, 60, 140);
    }

    [Fact]
    public void Failover_prefers_deployments_of_the_first_choices_cache_group()
    {
        DeploymentInfo[] grouped = [new("a1", CacheGroup: "org-a"), new("b1", CacheGroup: "org-b"), new("a2", CacheGroup: "org-a"), new("b2", CacheGroup: "org-b")];
        var balancer = Local();
        for (var c = 0; c < 200; c++)
        {
            var order = balancer.Order(Request($"c{c}", 0), grouped);
            Assert.Equal(grouped[order[0]].CacheGroup, grouped[order[1]].CacheGroup);

            var first = order[0];
            var failover = balancer.Order(Request($"c{c}", 0), grouped, i => i != first);
            Assert.Equal(grouped[first].CacheGroup, grouped[failover[0]].CacheGroup);
            Assert.Equal(first, failover[^1]);
        }
    }

    [Fact]
    public void Every_deployment_is_listed_once_with_unavailable_ones_last_in_their_order()
    {
        var balancer = Local();
        DeploymentInfo[] six = [.. Enumerable.Range(0, 6).Select(i => new DeploymentInfo($"d{i}"))];
        for (var c = 0; c < 100; c++)
        {
            Func<int, bool> available = i => (i + c) % 3 != 0;
            var all = balancer.Order(Request($"c{c}", 0), six);
            var order = balancer.Order(Request($"c{c}", 0), six, available);

            Assert.Equal(Enumerable.Range(0, 6), order.Order());
            var availableCount = Enumerable.Range(0, 6).Count(available);
            Assert.All(order.Take(availableCount), i => Assert.True(available(i)));
            Assert.Equal(all.Where(i => !available(i)), order.Skip(availableCount));
        }
    }

    [Fact]
    public void Pins_expire_after_the_providers_cache_ttl_and_each_hit_extends_them()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-06T02:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var balancer = Local(time);
        var rendezvous = balancer.First(Request("c", 0));
        var pinnedAt = (rendezvous + 1) % 4;
        balancer.Served(Request("c", 0), pinnedAt);

        time.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(pinnedAt, balancer.First(Request("c", 0)));
        time.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(pinnedAt, balancer.First(Request("c", 0)));
        time.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal(rendezvous, balancer.First(Request("c", 0)));
    }

    [Fact]
    public void Anthropic_pins_live_five_minutes_or_an_hour_with_one_hour_breakpoints()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-06T02:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var balancer = Local(time);
        var fiveMinutes = Request("five", 0, provider: "anthropic");
        var oneHour = Request("hour", 0, provider: "anthropic");
        oneHour.Envelope.Messages[^1].CacheBreakpoint = CacheControl.OneHour;
        var fiveAt = (balancer.First(fiveMinutes) + 1) % 4;
        var hourAt = (balancer.First(oneHour) + 1) % 4;
        balancer.Served(fiveMinutes, fiveAt);
        balancer.Served(oneHour, hourAt);

        time.Advance(TimeSpan.FromMinutes(6));

        Assert.NotEqual(fiveAt, balancer.First(fiveMinutes));
        Assert.Equal(hourAt, balancer.First(oneHour));
    }

    [Fact]
    public void Pins_never_cross_tenant_scopes()
    {
        var balancer = Local();
        for (var c = 0; c < 40; c++)
        {
            var inA = Request($"c{c}", 0, scope: "tenant-a");
            balancer.Served(inA, (balancer.First(inA) + 1) % 4);
            var inB = Request($"c{c}", 0, scope: "tenant-b");
            Assert.Equal(Local().First(inB), balancer.First(inB));
        }
    }

    [Fact]
    public void Local_pins_stay_within_their_bound()
    {
        var balancer = Local(configure: o => o.MaxPins = 100);
        for (var c = 0; c < 1000; c++)
        {
            var request = Request($"c{c}", 0, headers: Header("session_id", $"s{c}"));
            balancer.Served(request, c % 4);
            Assert.InRange(balancer.LocalPinCount, 1, 100);
        }
    }
}
