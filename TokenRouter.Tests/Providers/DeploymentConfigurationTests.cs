using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Simulator;
using TokenRouter.Tests.Configuration;

namespace TokenRouter.Tests.Providers;

/// <summary>Provider deployments from the seed's variables and from configuration, validated at start-up.</summary>
public sealed class DeploymentConfigurationTests
{
    private static ConfigurationManager Configure(Dictionary<string, string?> values) => SeedConfiguration.From(values);

    private static ProvidersOptions Bind(ConfigurationManager c) => c.GetSection(ProvidersOptions.SectionName).Get<ProvidersOptions>() ?? new();

    private static ModelRouter Router(ProvidersOptions o) => new(Options.Create(o), Options.Create(new SimulatorOptions()));

    [Fact]
    public void A_comma_separated_key_list_makes_one_deployment_per_key_with_ids_that_never_contain_the_key()
    {
        var o = Bind(Configure(new() { ["OPENAI_API_KEY"] = "sk-one-0123456789, sk-two-0123456789 ,sk-three-0123456789" }));

        var openai = Router(o).Resolve("gpt-4o").Provider;

        Assert.Equal(["sk-one-0123456789", "sk-two-0123456789", "sk-three-0123456789"], openai.Deployments.Select(d => d.ApiKey));
        Assert.Equal(3, openai.Deployments.Select(d => d.Id).Distinct().Count());
        Assert.All(openai.Deployments, d =>
        {
            Assert.Matches("^openai-[0-9a-f]{8}$", d.Id);
            Assert.DoesNotContain("0123456789", d.Id);
            Assert.Equal(new Uri(ProvidersOptions.DefaultOpenAIBaseUrl + "/"), d.BaseUri);
        });
        Assert.Equal("sk-one-0123456789", openai.ApiKey); // passthrough's default key
    }

    [Fact]
    public void The_fuller_form_sets_name_url_weight_cache_group_and_limits()
    {
        var o = Bind(Configure(new()
        {
            ["Providers:Anthropic:Deployments:0:Name"] = "org-a",
            ["Providers:Anthropic:Deployments:0:ApiKey"] = "sk-ant-a",
            ["Providers:Anthropic:Deployments:0:Weight"] = "2.5",
            ["Providers:Anthropic:Deployments:0:CacheGroup"] = "org-a",
            ["Providers:Anthropic:Deployments:0:Rpm"] = "500",
            ["Providers:Anthropic:Deployments:1:ApiKey"] = "sk-ant-b",
            ["Providers:Anthropic:Deployments:1:BaseUrl"] = "https://proxy.example/anthropic",
            ["Providers:Anthropic:Deployments:1:Tpm"] = "100000",
            ["Providers:Anthropic:Deployments:1:MaxConcurrency"] = "8",
        }));

        var anthropic = Router(o).Resolve("claude-haiku-4-5").Provider;

        Assert.Equal(2, anthropic.Deployments.Count);
        var a = anthropic.Deployments[0];
        Assert.Equal(("org-a", 2.5, "org-a", 500), (a.Id, a.Info.Weight, a.Info.CacheGroup, a.Rpm));
        Assert.Equal(new Uri(ProvidersOptions.DefaultAnthropicBaseUrl + "/"), a.BaseUri);
        var b = anthropic.Deployments[1];
        Assert.Equal(new Uri("https://proxy.example/anthropic/"), b.BaseUri);
        Assert.Equal(100000, b.Tpm);
        Assert.Equal(8, b.MaxConcurrency);
        Assert.Null(a.MaxConcurrency);
        Assert.Equal(anthropic.Deployments.Select(d => d.Info), anthropic.DeploymentInfos);
    }

    [Theory]
    [InlineData("Weight", "0", "Weight must be a positive number")]
    [InlineData("BaseUrl", "ftp://nowhere", "must be an absolute http(s) URL")]
    [InlineData("Rpm", "0", "Rpm must be positive")]
    [InlineData("MaxConcurrency", "0", "MaxConcurrency must be positive")]
    [InlineData("MaxConcurrency", "-2", "MaxConcurrency must be positive")]
    [InlineData("Name", "has space", "Name must be")]
    public void An_invalid_deployment_is_refused_at_start_up_naming_the_setting(string field, string value, string message)
    {
        var o = Bind(Configure(new()
        {
            ["Providers:OpenAI:Deployments:0:ApiKey"] = "sk-x",
            [$"Providers:OpenAI:Deployments:0:{field}"] = value,
        }));

        var result = new ProvidersOptionsValidator().Validate(null, o);

        Assert.True(result.Failed);
        Assert.Contains("Providers:OpenAI:Deployments:0", result.FailureMessage);
        Assert.Contains(message, result.FailureMessage);
    }

    [Fact]
    public void The_same_key_twice_is_refused()
    {
        var result = new ProvidersOptionsValidator().Validate(null, Bind(Configure(new() { ["DEEPSEEK_API_KEY"] = "sk-same,sk-same" })));

        Assert.True(result.Failed);
        Assert.Contains("same key twice", result.FailureMessage);
        Assert.DoesNotContain("sk-same", result.FailureMessage);
    }

    [Fact]
    public void TOKENROUTER_FALLBACKS_and_the_upstream_timeouts_are_read_from_their_seed_style_variables()
    {
        var c = Configure(new()
        {
            ["TOKENROUTER_FALLBACKS"] = """{"gpt-4o-mini": ["claude-haiku-4-5", "deepseek-chat"]}""",
            ["UPSTREAM_CONNECT_TIMEOUT"] = "3s",
            ["UPSTREAM_FIRST_BYTE_TIMEOUT"] = "45s",
            ["UPSTREAM_IDLE_TIMEOUT"] = "90s",
        });
        var services = new ServiceCollection().AddSingleton<IConfiguration>(c);
        services.AddOptions<RoutingOptions>().BindConfiguration(RoutingOptions.SectionName);
        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName);
        services.AddOptions<ProxyOptions>().BindConfiguration(ProxyOptions.SectionName);
        using var sp = services.BuildServiceProvider();

        Assert.Equal(["claude-haiku-4-5", "deepseek-chat"], sp.GetRequiredService<IOptions<RoutingOptions>>().Value.FallbacksFor("gpt-4o-mini")!);
        Assert.Null(sp.GetRequiredService<IOptions<RoutingOptions>>().Value.FallbacksFor("gpt-4o"));
        Assert.Equal(TimeSpan.FromSeconds(3), sp.GetRequiredService<IOptions<ProxyOptions>>().Value.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(45), sp.GetRequiredService<IOptions<GatewayOptions>>().Value.ProviderResponseTimeout);
        Assert.Equal(TimeSpan.FromSeconds(90), sp.GetRequiredService<IOptions<GatewayOptions>>().Value.UpstreamIdleTimeout);
    }

    [Fact]
    public void Fallbacks_to_the_model_itself_are_refused()
    {
        var o = new RoutingOptions { Fallbacks = new() { ["gpt-4o"] = ["GPT-4o"] } };

        Assert.True(new RoutingOptionsValidator().Validate(null, o).Failed);
    }
}
