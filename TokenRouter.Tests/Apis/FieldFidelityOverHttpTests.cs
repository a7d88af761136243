using System.Net;
using System.Text.Json.Nodes;
using TokenRouter.Tests.Infrastructure;
using TokenRouter.Tests.Pipeline;

namespace TokenRouter.Tests.Apis;

/// <summary>
/// Field fidelity end to end: a recorded agent request with unknown fields at every level goes through the gateway over
/// real HTTP, and the fake provider's recorded request carries every one of them, in place, with equal values.
/// </summary>
public sealed class FieldFidelityOverHttpTests : IAsyncLifetime
{
    private FakeProvider _provider = null!;
    private GatewayFactory _gateway = null!;

    public async Task InitializeAsync()
    {
        _provider = await FakeProvider.StartAsync();
        _gateway = new GatewayFactory(GatewayFactory.ProvidersAt(_provider));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _provider.DisposeAsync();
    }

    [Fact]
    public async Task Unknown_fields_of_an_OpenAI_client_reach_the_OpenAI_provider_over_http()
    {
        var session = AgentSessions.All.First(s => s.IsToolBench);
        var rng = new Random(11);
        var injector = new UnknownFieldInjector(rng);
        var body = FidelityRequests.InjectOpenAI(FidelityRequests.OpenAIBaseline(session, LastCall(session), rng, allowStream: false), injector);
        _provider.RespondOpenAIText("ok", new OpenAIUsage(10, 2));

        using var http = _gateway.CreateGatewayClient();
        using var response = await http.PostAsync("v1/chat/completions", Matrix.Json(body.ToJsonString()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = JsonNode.Parse(Assert.Single(_provider.Requests).BodyText)!;
        injector.AssertArrivedAndRemove(upstream, session.Id);
    }

    [Fact]
    public async Task Unknown_fields_of_an_Anthropic_client_reach_the_Anthropic_provider_over_http()
    {
        var session = AgentSessions.All.First(s => !s.IsToolBench);
        var rng = new Random(12);
        var injector = new UnknownFieldInjector(rng);
        var body = FidelityRequests.InjectAnthropic(FidelityRequests.AnthropicBaseline(session, LastCall(session), rng, allowStream: false), injector);
        _provider.RespondAnthropicText("ok", new AnthropicUsage(10, 2));

        using var http = _gateway.CreateGatewayClient();
        using var response = await http.PostAsync("v1/messages", Matrix.Json(body.ToJsonString()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = JsonNode.Parse(Assert.Single(_provider.Requests).BodyText)!;
        injector.AssertArrivedAndRemove(upstream, session.Id);
    }

    private static int LastCall(AgentSession session)
    {
        for (var k = session.Turns.Count - 1; k > 0; k--)
            if ((string?)session.Turns[k]!["role"] == "assistant") return k;
        return 1;
    }
}
