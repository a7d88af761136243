using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TokenRouter.Admin.Data;
using TokenRouter.Tests.Admin;
using TokenRouter.Tests.Telemetry;

namespace TokenRouter.Tests.Security;

/// <summary>
/// Admin on real Kestrel (its own instance beside the fixture's, same Postgres database and Redis): the browser-facing
/// security headers on every kind of response, no <c>Server</c> header, and no admin or client key in its logs, traces
/// or metrics after a run with wrong admin keys and a key creation.
/// </summary>
[Collection(ProcessWideMetricsCollection.Name)] // its activity listener samples every source in the process: run alone
public sealed class AdminSecurityTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    private static WebApplicationFactory<AdminDbContext> OnKestrel(AdminAppFixture fixture, CapturingLoggerProvider? logs = null)
    {
        var settings = AdminAppFactory.SettingsFor(fixture.DatabaseConnectionString, fixture.RedisConnectionString);
        settings["Logging:LogLevel:Default"] = "Trace";
        settings["Logging:Console:LogLevel:Default"] = "None";
        settings["Logging:Debug:LogLevel:Default"] = "None";
        var factory = new AdminAppFactory(settings).WithWebHostBuilder(builder =>
        {
            if (logs is not null)
                builder.ConfigureServices(services => services
                    .AddSingleton<ILoggerProvider>(logs)
                    .Configure<LoggerFilterOptions>(o => o.AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace)));
        });
        factory.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        return factory;
    }

    private static HttpClient ClientFor(WebApplicationFactory<AdminDbContext> factory)
    {
        factory.StartServer();
        var address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new HttpClient { BaseAddress = new Uri(address.Replace("[::]", "127.0.0.1")), Timeout = TimeSpan.FromSeconds(60) };
    }

    [Fact]
    public async Task Every_admin_response_carries_security_headers_and_no_server_header()
    {
        await using var factory = OnKestrel(fixture);
        using var http = ClientFor(factory);

        foreach (var (path, key, expected) in new (string, string?, HttpStatusCode)[]
                 {
                     ("/admin/api-keys", AdminAppFactory.AdminKey, HttpStatusCode.OK),
                     ("/admin/api-keys", null, HttpStatusCode.Unauthorized),
                     ("/admin/api-keys/not-a-guid", AdminAppFactory.AdminKey, HttpStatusCode.NotFound),
                     ("/openapi/v1.json", null, HttpStatusCode.OK),
                     ("/alive", null, HttpStatusCode.OK),
                 })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (key is not null) request.Headers.Authorization = new("Bearer", key);
            using var response = await http.SendAsync(request);

            Assert.Equal(expected, response.StatusCode);
            Assert.Equal("nosniff", Single(response, "X-Content-Type-Options"));
            Assert.Equal("DENY", Single(response, "X-Frame-Options"));
            Assert.Contains("frame-ancestors 'none'", Single(response, "Content-Security-Policy"), StringComparison.Ordinal);
            Assert.Equal("no-referrer", Single(response, "Referrer-Policy"));
            Assert.False(response.Headers.Contains("Server"), $"{path} sent Server: {string.Join(",", response.Headers.Server)}");
            Assert.False(response.Headers.Contains("X-Powered-By"), path);
        }
    }

    [Fact]
    public async Task No_admin_or_client_key_appears_in_admin_logs_traces_or_metrics()
    {
        var logs = new CapturingLoggerProvider();
        var wrongAdminKey = "wrong-admin-secret-" + Guid.NewGuid().ToString("N");
        string createdKey, scrape;
        using (var activities = new ActivityCapture())
        {
            await using (var factory = OnKestrel(fixture, logs))
            {
                using var http = ClientFor(factory);
                using (var bad = new HttpRequestMessage(HttpMethod.Get, "/admin/api-keys"))
                {
                    bad.Headers.Authorization = new("Bearer", wrongAdminKey);
                    Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(bad)).StatusCode);
                }
                using (var bad = new HttpRequestMessage(HttpMethod.Get, "/admin/api-keys"))
                {
                    bad.Headers.Add("x-api-key", wrongAdminKey);
                    Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(bad)).StatusCode);
                }
                http.DefaultRequestHeaders.Authorization = new("Bearer", AdminAppFactory.AdminKey);
                using var created = await http.PostAsJsonAsync("/admin/api-keys", new { name = "secrets-test", quota_usd = 1 });
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                createdKey = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
                using var bodyless = await http.PostAsync("/admin/api-keys", new StringContent("{", System.Text.Encoding.UTF8, "application/json"));
                Assert.Equal(HttpStatusCode.BadRequest, bodyless.StatusCode);
                Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/admin/api-keys")).StatusCode);
                scrape = await http.GetStringAsync("/metrics");
            }
            var secrets = new Dictionary<string, string>
            {
                ["admin key"] = AdminAppFactory.AdminKey,
                ["wrong admin key"] = wrongAdminKey,
                ["created client key"] = createdKey,
            };
            Assert.Contains(logs.Entries, e => e.StartsWith("Trace", StringComparison.Ordinal));
            Assert.Contains(logs.Entries, e => e.Contains("/admin/api-keys", StringComparison.Ordinal));
            Assert.NotEmpty(activities.Activities);
            SecretGrep.AssertNoneIn(logs.Entries, "Admin's logs", secrets);
            SecretGrep.AssertNoneIn(activities.Activities, "the traces", secrets);
            SecretGrep.AssertNoneIn([scrape], "Admin's /metrics scrape", secrets);
        }
    }

    private static string Single(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? Assert.Single(values)
        : response.Content.Headers.TryGetValues(name, out var content) ? Assert.Single(content)
        : throw new Xunit.Sdk.XunitException($"{response.RequestMessage?.RequestUri} has no {name} header.");
}
