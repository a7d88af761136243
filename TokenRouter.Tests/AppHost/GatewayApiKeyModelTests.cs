using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Publishing;
using TokenRouter.AppHost.Infrastructure;
using static TokenRouter.Tests.AppHost.AppHostModel;

namespace TokenRouter.Tests.AppHost;

/// <summary>The client key a newcomer gets from the AppHost: a generated secret parameter unless they brought keys of their own.</summary>
public sealed class GatewayApiKeyModelTests
{
    private const string None = $"{InfrastructureSelector.ConfigurationKey}=none";

    [Theory]
    [InlineData(None)]
    [InlineData($"{InfrastructureSelector.ConfigurationKey}=local")]
    [InlineData($"{InfrastructureSelector.ConfigurationKey}=containers")]
    public async Task Gateway_accepts_the_generated_gateway_api_key_parameter_when_no_keys_are_configured(string mode)
    {
        // Empty overrides whatever the machine running the tests has set.
        await using var builder = await CreateAsync(mode, "TOKENROUTER_API_KEYS=");

        var parameter = Single<ParameterResource>(builder, "gateway-api-key");
        Assert.True(parameter.Secret);
        Assert.Equal("""{"generate":{"minLength":40,"special":false}}""", DefaultAsManifestJson(parameter));
        Assert.Equal("{gateway-api-key.value}", (await ManifestEnvironmentAsync(Single<ProjectResource>(builder, "gateway")))["TOKENROUTER_API_KEYS"]);
        Assert.DoesNotContain(builder.Resources, r => r.Name == "tokenrouter-api-keys");
    }

    [Fact]
    public async Task Configured_keys_replace_the_generated_parameter_and_stay_secret()
    {
        await using var builder = await CreateAsync(None, "TOKENROUTER_API_KEYS=sk-tr-mine-1,sk-tr-mine-2");

        var environment = await ManifestEnvironmentAsync(Single<ProjectResource>(builder, "gateway"));
        Assert.Equal("{tokenrouter-api-keys.value}", environment["TOKENROUTER_API_KEYS"]);
        Assert.True(Single<ParameterResource>(builder, "tokenrouter-api-keys").Secret);
        Assert.DoesNotContain(builder.Resources, r => r.Name == "gateway-api-key");
        Assert.DoesNotContain(environment.Values, v => v.Contains("sk-tr-mine", StringComparison.Ordinal));
    }

    private static string DefaultAsManifestJson(ParameterResource parameter)
    {
        Assert.NotNull(parameter.Default);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            parameter.Default.WriteToManifest(new ManifestPublishingContext(
                new DistributedApplicationExecutionContext(DistributedApplicationOperation.Publish), "manifest.json", writer, CancellationToken.None));
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
