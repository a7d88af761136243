using System.Globalization;
using Npgsql;
using StackExchange.Redis;

namespace TokenRouter.Soak;

/// <summary>One look at the system under load.</summary>
/// <param name="HeapBytes">Each gateway's GC heap after its last collection, fragmentation left out (a gen0/gen1 collection leaves dead gen2 objects counted; after a full collection it is what the gateway holds live).</param>
internal sealed record SoakSample(TimeSpan At, long Sent, long[] RssKiB, long[] HeapBytes, int[] Sockets, long RedisUsedBytes, long UsageStreamLength,
    long LedgerRows);

/// <summary>
/// Reads what a long run can leak: each gateway's resident memory and open sockets (from /proc), Redis's memory and the
/// usage stream's length, and the ledger's row count in PostgreSQL. RSS alone cannot tell a leak from a server GC that
/// keeps what it was given, so each gateway's GC heap after its last collection is read from its own <c>/metrics</c> too.
/// </summary>
internal sealed class SoakSampler(int[] gatewayPids, HttpClient[] gateways, IConnectionMultiplexer redis, NpgsqlDataSource ledger)
    : IAsyncDisposable
{
    public const string UsageStream = "tokenrouter:usage";

    public async Task<SoakSample> SampleAsync(TimeSpan at, long sent)
    {
        var rss = gatewayPids.Select(ResidentKiB).ToArray();
        var heaps = await Task.WhenAll(gateways.Select(LiveHeapBytesAsync));
        var sockets = gatewayPids.Select(OpenSockets).ToArray();
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var info = await server.InfoAsync("memory");
        var used = info.SelectMany(g => g).FirstOrDefault(p => p.Key == "used_memory").Value;
        var length = await redis.GetDatabase().StreamLengthAsync(UsageStream);
        return new SoakSample(at, sent, rss, heaps, sockets, long.Parse(used ?? "0", CultureInfo.InvariantCulture), length, await LedgerRowsAsync());
    }

    public async Task<long> LedgerRowsAsync()
    {
        await using var command = ledger.CreateCommand("SELECT count(*) FROM usage_records");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public async Task<HashSet<string>> LedgerRequestIdsAsync()
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        await using var command = ledger.CreateCommand("SELECT request_id FROM usage_records");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) ids.Add(reader.GetString(0));
        return ids;
    }

    /// <summary>Sum over generations of the heap size after the last GC minus its fragmentation (OpenTelemetry's runtime metrics).</summary>
    private static async Task<long> LiveHeapBytesAsync(HttpClient gateway)
    {
        double size = 0, fragmentation = 0;
        foreach (var line in (await gateway.GetStringAsync("metrics")).Split('\n'))
        {
            if (line.StartsWith("dotnet_gc_last_collection_heap_size_bytes{", StringComparison.Ordinal)) size += Value(line);
            else if (line.StartsWith("dotnet_gc_last_collection_heap_fragmentation_size_bytes{", StringComparison.Ordinal)) fragmentation += Value(line);
        }
        return (long)(size - fragmentation);

        static double Value(string line) => double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }

    private static long ResidentKiB(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        return -1;
    }

    private static int OpenSockets(int pid)
    {
        var count = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true) count++;
            }
            catch (IOException)
            {
                // Closed between the listing and the read.
            }
        }
        return count;
    }

    public async ValueTask DisposeAsync()
    {
        await ledger.DisposeAsync();
        await redis.DisposeAsync();
    }
}
