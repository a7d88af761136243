using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using TokenRouter.Gateway.Forwarding;

namespace TokenRouter.Tests.Forwarding;

/// <summary>Request ids are UUIDv7s (the ledger deduplicates by them): well-formed, stamped with the gateway's clock,
/// time-ordered and unique however many threads draw them.</summary>
public sealed class RequestIdsTests
{
    [Fact]
    public void An_id_is_req_and_a_version_7_uuid_carrying_the_clocks_millisecond()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 4, 30, 15, 123, TimeSpan.Zero));

        var id = RequestIds.New(time);

        Assert.Matches("^req_[0-9a-f]{32}$", id);
        var uuid = Guid.ParseExact(id[4..], "N");
        Assert.Equal(7, uuid.Version);
        Assert.Equal(0b10, (uuid.Variant >> 2) & 0b11); // RFC 9562's variant: the top two bits 10
        var bytes = uuid.ToByteArray(bigEndian: true);
        var millis = ((long)bytes[0] << 40) | ((long)bytes[1] << 32) | ((long)bytes[2] << 24) | ((long)bytes[3] << 16) | ((long)bytes[4] << 8) | bytes[5];
        Assert.Equal(time.GetUtcNow().ToUnixTimeMilliseconds(), millis);
    }

    [Fact]
    public void Ids_sort_in_the_order_of_their_milliseconds()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero));
        var ids = new List<string>();
        for (var i = 0; i < 300; i++)
        {
            ids.Add(RequestIds.New(time));
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(ids, ids.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Ids_drawn_in_the_same_millisecond_on_many_threads_are_all_distinct()
    {
        // One frozen millisecond: only the random bits tell the ids apart, across several refills of each thread's block.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero));
        var ids = new ConcurrentBag<string>();

        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            for (var i = 0; i < 5_000; i++) ids.Add(RequestIds.New(time));
        });

        Assert.Equal(40_000, ids.Count);
        Assert.Equal(40_000, ids.Distinct(StringComparer.Ordinal).Count());
        // The 74 random bits are not all alike: every hex digit of the random part takes many values.
        var randomDigits = ids.Select(id => id[30]).Distinct().Count();
        Assert.True(randomDigits >= 8, $"only {randomDigits} distinct values of a random hex digit");
    }
}
