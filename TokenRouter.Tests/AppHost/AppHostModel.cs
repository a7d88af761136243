using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace TokenRouter.Tests.AppHost;

/// <summary>Builds the AppHost's model without starting it and reads resources as the manifest would describe them.</summary>
internal static class AppHostModel
{
    public static Task<IDistributedApplicationTestingBuilder> CreateAsync(params string[] args) =>
        DistributedApplicationTestingBuilder.CreateAsync<Projects.TokenRouter_AppHost>(args);

    public static T Single<T>(IDistributedApplicationTestingBuilder builder, string name) where T : IResource =>
        Assert.Single(builder.Resources.OfType<T>(), r => r.Name == name);

    /// <summary>Environment as the manifest would write it: references appear as expressions such as <c>{redis.connectionString}</c>.</summary>
    public static async Task<IReadOnlyDictionary<string, string>> ManifestEnvironmentAsync(IResource resource) =>
        (await PublishConfigurationAsync(resource)).EnvironmentVariables.ToDictionary(e => e.Key, e => e.Value);

    public static async Task<string[]> ManifestArgumentsAsync(IResource resource) =>
        (await PublishConfigurationAsync(resource)).Arguments.Select(a => a.Value).ToArray();

    public static string[] WaitedFor(IResource resource) =>
        resource.Annotations.OfType<WaitAnnotation>().Select(w => w.Resource.Name).Distinct().ToArray();

    private static async Task<IExecutionConfigurationResult> PublishConfigurationAsync(IResource resource)
    {
        var result = await ExecutionConfigurationBuilder.Create(resource)
            .WithEnvironmentVariablesConfig()
            .WithArgumentsConfig()
            .BuildAsync(new DistributedApplicationExecutionContext(DistributedApplicationOperation.Publish), NullLogger.Instance, CancellationToken.None);
        Assert.Null(result.Exception);
        return result;
    }
}
