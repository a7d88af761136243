using Microsoft.Extensions.Configuration;
using TokenRouter.Gateway.Configuration;

namespace TokenRouter.Tests.Configuration;

/// <summary>Configuration as the gateway reads it: the values given, with the seed's variable names mapped onto its keys.</summary>
internal static class SeedConfiguration
{
    public static ConfigurationManager From(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection(values);
        SeedConfigurationAliases.Apply(configuration);
        return configuration;
    }
}
