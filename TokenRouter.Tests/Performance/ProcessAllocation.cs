namespace TokenRouter.Tests.Performance;

/// <summary>
/// Bytes the whole process allocates per operation (<see cref="GC.GetTotalAllocatedBytes(bool)"/>), for operations
/// whose awaits resume on other threads: after a warm-up, the lowest of three batches, so that a timer firing
/// elsewhere in the process does not count. Callers run in <c>ProcessWideMetricsCollection</c>, which runs alone.
/// </summary>
internal static class ProcessAllocation
{
    public static async Task<long> PerOperationAsync(Func<Task> operation, int warmup, int batch)
    {
        for (var i = 0; i < warmup; i++) await operation();
        var perOperation = long.MaxValue;
        for (var round = 0; round < 3; round++)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            for (var i = 0; i < batch; i++) await operation();
            perOperation = Math.Min(perOperation, (GC.GetTotalAllocatedBytes(precise: true) - before) / batch);
        }
        return perOperation;
    }
}
