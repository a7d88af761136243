using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using TokenRouter.Bench;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Pipeline;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Vendors;
using TokenRouter.Gateway.Vendors.OpenAI;
using TokenRouter.Simulator;

namespace TokenRouter.BalanceReplay;

internal enum Strategy
{
    SingleKey,
    RoundRobin,
    CacheAware,
}

/// <param name="Cooldown">The last key is unavailable (cooling down) for the middle third of the requests.</param>
internal sealed record Scenario(string Name, int Keys, Strategy Strategy, bool Cooldown);

/// <param name="Concurrency">Conversations in progress at once; their turns interleave.</param>
/// <param name="TurnInterval">Time between two turns of one conversation (the model's answer plus the agent's tool call).</param>
internal sealed record ReplaySettings(int Concurrency, TimeSpan TurnInterval);

internal sealed class KeyStats
{
    public int Requests;
    public long InputTokens;
    public long CachedTokens;
    public int RequestsDuringCooldown;
}

internal sealed record ScenarioResult(Scenario Scenario, KeyStats[] Keys)
{
    public int Requests => Keys.Sum(k => k.Requests);
    public long InputTokens => Keys.Sum(k => k.InputTokens);
    public long CachedTokens => Keys.Sum(k => k.CachedTokens);
    public double HitRatio => InputTokens == 0 ? 0 : (double)CachedTokens / InputTokens;
}

/// <summary>
/// One scenario: every session's requests (<c>system + turns[:k]</c> with its tools, as the client recorded them) through
/// the gateway's pipeline (parse → Chunker → Arranger → Canonicalizer → CacheInjector → OpenAI outbound bytes), then to
/// the key the strategy picks; each key is an OpenAI simulator with a prefix cache of its own (one organisation each:
/// 128-token units, ≥ 1024 tokens, 5-minute TTL restarted on use). A virtual clock moves by
/// <c>TurnInterval / Concurrency</c> per request, so caches and pins expire as they would in real time.
/// </summary>
internal static class BalanceRunner
{
    private static readonly RouteTarget Target = new(new ProviderEndpoint { Name = "openai", Kind = ProviderKind.OpenAI }, "gpt-4o");
    private static readonly ClientIdentity Identity = new("bench-tenant", "bench key", "hash-bench");

    public static async Task<ScenarioResult> RunAsync(Scenario scenario, IReadOnlyList<WorkloadSession> sessions, ReplaySettings settings)
    {
        var clock = new VirtualClock();
        var simulatorOptions = new SimulatorOptions();
        var keys = Enumerable.Range(0, scenario.Keys).Select(i => new DeploymentInfo($"key-{i}")).ToArray();
        var simulators = keys.Select(_ => new OpenAIChatSimulator(new SimPrefixCache(clock, simulatorOptions.MaxCachedPrefixes), simulatorOptions)).ToArray();
        var stats = keys.Select(_ => new KeyStats()).ToArray();
        var gatewayOptions = new GatewayOptions();
        var pipeline = new RequestPipeline(new Canonicalizer(), new Arranger(new ToolOrderMemory(clock) { Ttl = gatewayOptions.ToolOrderMemoryTtl }),
            new OutboundAdapters(Options.Create(gatewayOptions)), new FixedOptionsMonitor<GatewayOptions>(gatewayOptions));
        var balancer = new CacheAwareBalancer(clock, new CacheAwareBalancingOptions());
        var headers = new HeaderDictionary();

        var totalRequests = sessions.Sum(s => s.RequestPoints().Count);
        var (cooldownFrom, cooldownTo) = scenario.Cooldown ? (totalRequests / 3, 2 * totalRequests / 3) : (-1, -1);
        var step = settings.TurnInterval / settings.Concurrency;
        var roundRobin = 0;
        var sent = 0;

        foreach (var (session, k) in Interleave(sessions, settings.Concurrency))
        {
            var coolingDown = sent >= cooldownFrom && sent < cooldownTo;
            var lastKey = keys.Length - 1;
            bool IsAvailable(int i) => !(coolingDown && i == lastKey);

            using var envelope = OpenAIInboundAdapter.Parse(Body(session, k));
            using var prepared = pipeline.Prepare(envelope, Target, Identity);
            var request = new RoutingRequest(Target.Provider.Name, envelope, headers, Identity.Scope);
            var key = scenario.Strategy switch
            {
                Strategy.SingleKey => 0,
                Strategy.RoundRobin => roundRobin++ % keys.Length,
                _ => (await balancer.OrderAsync(request, keys, IsAvailable, CancellationToken.None))[0],
            };

            using var upstream = JsonDocument.Parse(prepared.Body.WrittenMemory);
            var usage = simulators[key].Process(upstream.RootElement, SimFormat.OpenAI).Usage;
            if (scenario.Strategy == Strategy.CacheAware) await balancer.ServedAsync(request, keys[key], CancellationToken.None);

            stats[key].Requests++;
            stats[key].InputTokens += usage.PromptTokens;
            stats[key].CachedTokens += usage.CacheReadTokens;
            if (coolingDown) stats[key].RequestsDuringCooldown++;
            sent++;
            clock.Advance(step);
        }
        return new ScenarioResult(scenario, stats);
    }

    /// <summary>Up to <paramref name="concurrency"/> conversations at once, one turn each in rotation; a finished
    /// conversation's place goes to the next session.</summary>
    private static IEnumerable<(WorkloadSession Session, int K)> Interleave(IReadOnlyList<WorkloadSession> sessions, int concurrency)
    {
        var waiting = new Queue<WorkloadSession>(sessions);
        var active = new List<(WorkloadSession Session, List<int> Points, int Next)>();
        while (waiting.Count > 0 || active.Count > 0)
        {
            while (active.Count < concurrency && waiting.TryDequeue(out var s))
            {
                var points = s.RequestPoints();
                if (points.Count > 0) active.Add((s, points, 0));
            }
            for (var i = 0; i < active.Count; i++)
            {
                var (s, points, next) = active[i];
                yield return (s, points[next]);
                active[i] = (s, points, next + 1);
            }
            active.RemoveAll(a => a.Next >= a.Points.Count);
        }
    }

    /// <summary>The OpenAI chat request of <c>system + turns[:k]</c> with the session's tools, as recorded (client A of the cache replay).</summary>
    private static byte[] Body(WorkloadSession s, int k)
    {
        var messages = new JsonArray();
        if (s.System is { } system) messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
        for (var i = 0; i < k; i++) messages.Add(s.Turns[i]!.DeepClone());
        var request = new JsonObject { ["model"] = "gpt-4o", ["messages"] = messages };
        if (s.Tools.Count > 0) request["tools"] = s.Tools.DeepClone();
        return Encoding.UTF8.GetBytes(request.ToJsonString());
    }
}

/// <summary>Time that moves only when the replay says so: TTLs of caches and pins play out as they would for real.</summary>
internal sealed class VirtualClock : TimeProvider
{
    private long _ticks = new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero).UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(_ticks, TimeSpan.Zero);
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => _ticks;
    public void Advance(TimeSpan by) => _ticks += by.Ticks;
}

/// <summary>An options monitor that always returns one value (the pipeline reads <c>CurrentValue</c> per request).</summary>
internal sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;
    public T Get(string? name) => value;
    public IDisposable? OnChange(Action<T, string?> listener) => null;
}
