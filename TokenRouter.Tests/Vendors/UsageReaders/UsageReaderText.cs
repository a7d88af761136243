using System.Text.Json;
using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Vendors.UsageReaders;

namespace TokenRouter.Tests.Vendors.UsageReaders;

/// <summary>A reader's two JSON entry points, from text.</summary>
internal static class UsageReaderText
{
    public static Usage ReadUsage(this IUsageReader reader, string usageJson)
    {
        using var doc = JsonDocument.Parse(usageJson);
        return reader.ReadUsage(doc.RootElement);
    }

    public static Usage ReadResponse(this IUsageReader reader, string responseJson)
    {
        using var doc = JsonDocument.Parse(responseJson);
        return reader.ReadResponse(doc.RootElement);
    }
}
