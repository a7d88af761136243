using System.Text.Json;

namespace TokenRouter.Tests.Admin;

public sealed class AdminOpenApiTests(AdminAppFixture fixture) : IClassFixture<AdminAppFixture>
{
    [Theory]
    [InlineData("/admin/api-keys/{id}", "patch", "UpdateApiKeyRequest", "ApiKeyResponse")]
    [InlineData("/admin/pricing", "get", null, null)]
    [InlineData("/admin/pricing/{model}", "put", "PriceRequest", "PriceResponse")]
    [InlineData("/admin/pricing/{model}", "delete", null, null)]
    [InlineData("/admin/usage", "get", null, "UsageReport")]
    [InlineData("/admin/api-keys/{id}/usage", "get", null, "ApiKeyUsageResponse")]
    [InlineData("/admin/ledger", "get", null, "LedgerStatusResponse")]
    [InlineData("/admin/webhooks", "post", "CreateWebhookRequest", "CreatedWebhookResponse")]
    [InlineData("/admin/webhooks/{id}", "patch", "UpdateWebhookRequest", "WebhookResponse")]
    [InlineData("/admin/webhooks/{id}/deliveries", "get", null, null)]
    public async Task Endpoint_is_documented_with_its_request_and_response_schemas(
        string path, string method, string? requestSchema, string? responseSchema)
    {
        using var client = fixture.Factory.CreateClient();
        using var document = JsonDocument.Parse(await client.GetStringAsync("/openapi/v1.json"));
        var root = document.RootElement;

        Assert.True(root.GetProperty("paths").TryGetProperty(path, out var item), $"{path} is not documented");
        Assert.True(item.TryGetProperty(method, out var operation), $"{method.ToUpperInvariant()} {path} is not documented");
        if (requestSchema is not null)
        {
            Assert.Equal($"#/components/schemas/{requestSchema}", operation.GetProperty("requestBody").GetProperty("content")
                .GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString());
        }
        if (responseSchema is not null)
        {
            var ok = operation.GetProperty("responses").EnumerateObject().First(r => r.Name is "200" or "201").Value;
            Assert.Equal($"#/components/schemas/{responseSchema}", ok.GetProperty("content")
                .GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString());
        }
    }

    [Fact]
    public async Task Usage_report_documents_its_query_and_snake_case_row_fields()
    {
        using var client = fixture.Factory.CreateClient();
        using var document = JsonDocument.Parse(await client.GetStringAsync("/openapi/v1.json"));
        var root = document.RootElement;

        var parameters = root.GetProperty("paths").GetProperty("/admin/usage").GetProperty("get").GetProperty("parameters")
            .EnumerateArray().Select(p => p.GetProperty("name").GetString()!).ToArray();
        Assert.Equal(["from", "group_by", "key_id", "tag", "to"], parameters.Order().ToArray());
        var row = root.GetProperty("components").GetProperty("schemas").GetProperty("UsageRow").GetProperty("properties");
        foreach (var field in new[] { "requests", "prompt_tokens", "cached_read_tokens", "cache_write_5m_tokens",
                     "cache_write_1h_tokens", "completion_tokens", "cost_usd", "cache_savings_usd", "dedup_savings_usd",
                     "deduplicated_requests", "unpriced_requests", "cached_token_ratio" })
        {
            Assert.True(row.TryGetProperty(field, out _), $"UsageRow lacks {field}");
        }
        var price = root.GetProperty("components").GetProperty("schemas").GetProperty("PriceRequest").GetProperty("properties");
        Assert.Equal(["cache_write_1h", "cache_write_5m", "cached_input", "input", "output"],
            price.EnumerateObject().Select(p => p.Name).Order().ToArray());
    }
}
