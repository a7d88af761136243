using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using TokenRouter.Admin.Data;

namespace TokenRouter.Tests.Admin;

/// <summary>
/// The Admin app in-process, configured with the given settings. Both web projects' <c>Program</c> classes are
/// internal and share a name, so the factory is keyed on a public Admin type instead.
/// </summary>
public sealed class AdminAppFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<AdminDbContext>
{
    public const string AdminKey = "test-admin-key-0123456789abcdef";

    /// <summary>Settings for a working Admin against the given servers; tweak the dictionary for special cases.</summary>
    public static Dictionary<string, string?> SettingsFor(string databaseConnectionString, string redisConnectionString) => new()
    {
        ["ConnectionStrings:tokenrouter"] = databaseConnectionString,
        ["ConnectionStrings:redis"] = redisConnectionString,
        ["ADMIN_API_KEY"] = AdminKey,
        ["Admin:KeySync:RetryDelay"] = "00:00:00.200",
        ["Admin:KeySync:MaxRetryDelay"] = "00:00:01",
        ["Logging:LogLevel:Default"] = "Warning",
    };

    protected override IHost CreateHost(IHostBuilder builder)
    {
        // Host configuration reaches WebApplication.CreateBuilder before Program reads it (AddNpgsqlDbContext reads
        // the connection string at registration); ConfigureAppConfiguration would apply only after Build().
        builder.ConfigureHostConfiguration(configuration => configuration.AddInMemoryCollection(settings));
        return base.CreateHost(builder);
    }

    public HttpClient CreateAdminClient()
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", AdminKey);
        return client;
    }
}
