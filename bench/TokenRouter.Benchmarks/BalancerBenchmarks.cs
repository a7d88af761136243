using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Http;
using TokenRouter.Gateway.Formats;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Benchmarks;

/// <summary>
/// What the cache-aware balancer adds to a request, on the same real late-turn agent request (~30 KB, after the pipeline):
/// choosing the deployment of a conversation it knows (a local pin hit: no Redis), of a conversation it has never seen
/// (every prefix looked up and missed, then weighted rendezvous; no Redis configured), and the whole per-request cost:
/// one order and one served (which reuses the order's hashes).
/// </summary>
[MemoryDiagnoser]
public class BalancerBenchmarks
{
    private static readonly DeploymentInfo[] Deployments = [new("key-0"), new("key-1"), new("key-2"), new("key-3")];
    private static readonly Func<int, bool> AllAvailable = _ => true;

    private Envelope _envelope = null!;
    private RoutingRequest _request = null!;
    private CacheAwareBalancer _known = null!;
    private CacheAwareBalancer _empty = null!;

    [GlobalSetup]
    public void Setup()
    {
        var f = new PipelineFixture();
        _envelope = OpenAIInboundAdapter.Parse(f.Sample.Body);
        f.Pipeline.Prepare(_envelope, f.OpenAITarget, f.Identity).Dispose();
        _request = new RoutingRequest(f.OpenAITarget.Provider.Name, _envelope, new HeaderDictionary(), f.Identity.Scope);
        _known = new CacheAwareBalancer(TimeProvider.System, new CacheAwareBalancingOptions());
        _known.ServedAsync(_request, Deployments[2], CancellationToken.None).AsTask().Wait();
        _empty = new CacheAwareBalancer(TimeProvider.System, new CacheAwareBalancingOptions());
        Console.WriteLine($"// Input: {f.Sample.SessionId}, {_envelope.Messages.Count} messages, {_envelope.Tools.Count} tools, {f.Sample.Body.Length} bytes");
    }

    [GlobalCleanup]
    public void Cleanup() => _envelope.Dispose();

    [Benchmark(Description = "Order: known conversation (local pin)")]
    public int OrderKnown() => _known.OrderAsync(_request, Deployments, AllAvailable, CancellationToken.None).Result[0];

    [Benchmark(Description = "Order: new conversation (rendezvous)")]
    public int OrderNew() => _empty.OrderAsync(_request, Deployments, AllAvailable, CancellationToken.None).Result[0];

    [Benchmark(Description = "Order + Served: one request of a known conversation")]
    public bool OrderAndServed()
    {
        var first = _known.OrderAsync(_request, Deployments, AllAvailable, CancellationToken.None).Result[0];
        return _known.ServedAsync(_request, Deployments[first], CancellationToken.None).IsCompleted;
    }
}
