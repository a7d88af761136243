using TokenRouter.Gateway.Formats;

namespace TokenRouter.Tests.Formats;

public sealed class TextCacheTests
{
    private static string Make(int key, int _) => new('x', key);

    [Fact]
    public void A_value_asked_for_again_gets_the_same_string()
    {
        var cache = new TextCache<int>(capacity: 8);

        var first = cache.Get(3, 0, Make);

        Assert.Equal("xxx", first);
        Assert.Same(first, cache.Get(3, 0, Make));
    }

    [Fact]
    public void The_cache_is_emptied_once_more_values_than_its_capacity_were_added()
    {
        var cache = new TextCache<int>(capacity: 2);
        var first = cache.Get(1, 0, Make);
        cache.Get(2, 0, Make);
        Assert.Same(first, cache.Get(1, 0, Make));

        cache.Get(3, 0, Make); // the third addition empties it

        Assert.NotSame(first, cache.Get(1, 0, Make));
    }
}
