using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Vendors.OpenAI;

namespace TokenRouter.Tests.Routing;

/// <summary>Requests of made-up agent conversations, as the balancer sees them after the pipeline.</summary>
internal static class BalancerTestKit
{
    /// <summary>~6 KB: with it every turn's prefix is long enough for a provider to cache (≥ 1024 tokens at 4 bytes each).</summary>
    public static readonly string LongSystem =
        "You are the airline's booking agent. " + string.Join(' ', Enumerable.Range(0, 400).Select(i => $"Policy {i} applies."));

    public const string ShortSystem = "Be brief.";

    public static readonly DeploymentInfo[] FourEqual = [new("d0"), new("d1"), new("d2"), new("d3")];

    public static bool AllAvailable(int index) => true;

    /// <summary>Turn <paramref name="turn"/> (0 = the first request) of conversation <paramref name="conversation"/>:
    /// system, the first user message, then one assistant answer and one user follow-up per earlier turn.</summary>
    public static RoutingRequest Request(string conversation, int turn, string scope = "tenant-a", string provider = "openai",
        string? system = null, IHeaderDictionary? headers = null, string? promptCacheKey = null)
    {
        var messages = new JsonArray
        {
            new JsonObject { ["role"] = "system", ["content"] = system ?? LongSystem },
            new JsonObject { ["role"] = "user", ["content"] = $"Conversation {conversation}: change my booking." },
        };
        for (var k = 1; k <= turn; k++)
        {
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = $"Answer {k} in {conversation}." });
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = $"Follow-up {k}." });
        }
        var body = new JsonObject { ["model"] = "gpt-4o", ["messages"] = messages };
        if (promptCacheKey is not null) body["prompt_cache_key"] = promptCacheKey;
        var envelope = OpenAIInboundAdapter.Parse(Encoding.UTF8.GetBytes(body.ToJsonString()));
        return new RoutingRequest(provider, envelope, headers ?? new HeaderDictionary(), scope);
    }

    public static IHeaderDictionary Header(string name, string value) => new HeaderDictionary { [name] = value };

    public static int First(this CacheAwareBalancer balancer, RoutingRequest request, IReadOnlyList<DeploymentInfo>? deployments = null,
        Func<int, bool>? isAvailable = null) =>
        balancer.Order(request, deployments, isAvailable)[0];

    public static int[] Order(this CacheAwareBalancer balancer, RoutingRequest request, IReadOnlyList<DeploymentInfo>? deployments = null,
        Func<int, bool>? isAvailable = null)
    {
        var task = balancer.OrderAsync(request, deployments ?? FourEqual, isAvailable ?? AllAvailable, CancellationToken.None);
        Assert.True(task.IsCompleted, "Without Redis the balancer answers synchronously.");
        return task.Result;
    }

    public static void Served(this CacheAwareBalancer balancer, RoutingRequest request, int deployment,
        IReadOnlyList<DeploymentInfo>? deployments = null) =>
        Assert.True(balancer.ServedAsync(request, (deployments ?? FourEqual)[deployment], CancellationToken.None).IsCompletedSuccessfully);

    public static CacheAwareBalancer Local(TimeProvider? time = null, Action<CacheAwareBalancingOptions>? configure = null)
    {
        var options = new CacheAwareBalancingOptions();
        configure?.Invoke(options);
        return new CacheAwareBalancer(time ?? TimeProvider.System, options);
    }
}
