using System.Buffers;
using System.Text;
using TokenRouter.Gateway.Formats;

namespace TokenRouter.Tests.Formats;

public sealed class Utf8JsonWriterCacheTests
{
    [Fact]
    public void Each_rent_writes_a_fresh_document_into_its_own_output_even_after_one_that_broke_off()
    {
        var first = new ArrayBufferWriter<byte>();
        using (var lease = Utf8JsonWriterCache.Rent(first))
        {
            lease.Writer.WriteStartObject();
            lease.Writer.WriteString("a", "1");
            lease.Writer.WriteEndObject();
        }

        var broken = new ArrayBufferWriter<byte>();
        using (var lease = Utf8JsonWriterCache.Rent(broken))
        {
            lease.Writer.WriteStartObject(); // left open, as a write that threw would leave it
            lease.Writer.WriteStartArray("open");
        }

        var second = new ArrayBufferWriter<byte>();
        using (var lease = Utf8JsonWriterCache.Rent(second))
        {
            lease.Writer.WriteStartObject();
            lease.Writer.WriteNumber("b", 2);
            lease.Writer.WriteEndObject();
        }

        Assert.Equal("""{"a":"1"}""", Encoding.UTF8.GetString(first.WrittenSpan));
        Assert.Equal("""{"b":2}""", Encoding.UTF8.GetString(second.WrittenSpan));
    }
}
