using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Simulator;
using TokenRouter.Tests.Configuration;
using TokenRouter.Tests.Infrastructure;

namespace TokenRouter.Tests.Routing;

/// <summary><c>TOKENROUTER_MODEL_GROUPS</c> / <c>Routing:ModelGroups</c>: read from either, checked at start-up.</summary>
public sealed class ModelGroupOptionsTests
{
    private static RoutingOptions Bind(Dictionary<string, string?> values)
    {
        var services = new ServiceCollection().AddSingleton<IConfiguration>(SeedConfiguration.From(values));
        services.AddOptions<RoutingOptions>().BindConfiguration(RoutingOptions.SectionName);
        using var sp = services.BuildServiceProvider();
        return sp.GetRequiredService<IOptions<RoutingOptions>>().Value;
    }

    private static readonly ModelRouter Router = new(Options.Create(new ProvidersOptions
    {
        OpenAI = new ProviderSettings { ApiKey = "sk-openai" },
        Anthropic = new ProviderSettings { ApiKey = "sk-anthropic" },
    }), Options.Create(new SimulatorOptions()));

    /// <summary>Both validators the gateway registers: the options' own checks and the routes'.</summary>
    private static ValidateOptionsResult Validate(RoutingOptions o)
    {
        var failures = new[] { new RoutingOptionsValidator().Validate(null, o), new ModelGroupRoutesValidator(Router).Validate(null, o) }
            .Where(r => r.Failed).SelectMany(r => r.Failures!).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    [Fact]
    public void TOKENROUTER_MODEL_GROUPS_is_read_as_a_json_object_of_groups_and_their_members_in_order()
    {
        var o = Bind(new() { ["TOKENROUTER_MODEL_GROUPS"] = """{"fast": ["gpt-4o-mini", "claude-haiku-4-5"], "smart": ["claude-sonnet-4-5"]}""" });

        Assert.Equal(["gpt-4o-mini", "claude-haiku-4-5"], o.GroupFor("fast")!);
        Assert.Equal(["gpt-4o-mini", "claude-haiku-4-5"], o.GroupFor("FAST")!);
        Assert.Equal(["claude-sonnet-4-5"], o.GroupFor("smart")!);
        Assert.Null(o.GroupFor("gpt-4o-mini"));
        Assert.True(Validate(o).Succeeded);
    }

    [Fact]
    public void Configuration_wins_over_the_variable_for_the_same_group()
    {
        var o = Bind(new()
        {
            ["Routing:ModelGroups:fast:0"] = "claude-haiku-4-5",
            ["TOKENROUTER_MODEL_GROUPS"] = """{"fast": ["gpt-4o-mini"]}""",
        });

        Assert.Equal(["claude-haiku-4-5"], o.GroupFor("fast")!);
    }

    [Theory]
    [InlineData("""{"fast": "gpt-4o-mini"}""")]
    [InlineData("""["gpt-4o-mini"]""")]
    [InlineData("""{"fast": []}""")]
    public void A_malformed_or_empty_TOKENROUTER_MODEL_GROUPS_stops_start_up_naming_the_variable(string json)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Bind(new() { ["TOKENROUTER_MODEL_GROUPS"] = json }));

        Assert.Contains("TOKENROUTER_MODEL_GROUPS", error.Message);
    }

    [Theory]
    [InlineData("fast", new[] { "gpt-4o-mini", "" }, "must list one or more model names")]
    [InlineData("fast", new[] { "gpt-4o-mini", "GPT-4o-mini" }, "lists a model twice")]
    [InlineData("fast", new[] { "llama-3-70b" }, "member 'llama-3-70b' is not a routable model")]
    [InlineData("fast", new[] { "fast", "gpt-4o-mini" }, "member 'fast' is a group")]
    [InlineData("gpt-fast", new[] { "gpt-4o-mini" }, "is a model name the gateway routes already")]
    public void An_invalid_group_is_refused_at_start_up_with_a_clear_message(string group, string[] members, string message)
    {
        var result = Validate(new RoutingOptions { ModelGroups = new(StringComparer.OrdinalIgnoreCase) { [group] = members } });

        Assert.True(result.Failed);
        Assert.Contains($"Routing:ModelGroups:{group} (TOKENROUTER_MODEL_GROUPS)", result.FailureMessage);
        Assert.Contains(message, result.FailureMessage);
    }

    [Fact]
    public void A_group_cannot_have_fallbacks_of_its_own_nor_list_another_group()
    {
        var result = Validate(new RoutingOptions
        {
            ModelGroups = new(StringComparer.OrdinalIgnoreCase) { ["fast"] = ["gpt-4o-mini"], ["faster"] = ["fast"] },
            Fallbacks = new(StringComparer.OrdinalIgnoreCase) { ["fast"] = ["claude-haiku-4-5"] },
        });

        Assert.True(result.Failed);
        Assert.Contains("has Routing:Fallbacks too", result.FailureMessage);
        Assert.Contains("member 'fast' is a group", result.FailureMessage);
    }

    [Fact]
    public void A_member_whose_provider_has_no_deployment_yet_is_accepted_since_admin_may_add_one()
    {
        // DeepSeek has no key here: routable by name, served once a deployment exists (skipped until then).
        var result = Validate(new RoutingOptions { ModelGroups = new(StringComparer.OrdinalIgnoreCase) { ["cheap"] = ["deepseek-chat", "gpt-4o-mini"] } });

        Assert.True(result.Succeeded);
    }

    [Fact]
    public async Task The_gateway_does_not_start_with_a_group_whose_member_routes_nowhere()
    {
        await using var gateway = new GatewayFactory(new Dictionary<string, string?>
        {
            ["TOKENROUTER_MODEL_GROUPS"] = """{"fast": ["llama-3-70b"]}""",
        });

        var error = Assert.Throws<OptionsValidationException>(() => gateway.CreateGatewayClient());

        Assert.Contains("member 'llama-3-70b' is not a routable model", error.Message);
    }
}
