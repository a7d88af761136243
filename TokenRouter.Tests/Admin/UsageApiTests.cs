using System.Net;
using System.Text.Json;
using static TokenRouter.Tests.Admin.AdminTestHelpers;

namespace TokenRouter.Tests.Admin;

/// <summary>An Admin whose ledger holds a known set of rows (inserted directly, so every number is known).</summary>
public sealed class UsageApiFixture : IAsyncLifetime
{
    public AdminAppFixture App { get; } = new();
    public Guid Alpha { get; private set; }
    public Guid Beta { get; private set; }
    public List<SeededUsage> Rows { get; } = [];

    public async Task InitializeAsync()
    {
        await App.InitializeAsync();
        Alpha = (await App.Client.CreateKeyAsync(new { name = "alpha", quota_usd = 10 })).GetProperty("id").GetGuid();
        Beta = (await App.Client.CreateKeyAsync(new { name = "beta" })).GetProperty("id").GetGuid();

        Rows.AddRange(
        [
            new("r1", Alpha, "m-a", "openai", At("2026-01-01T10:00:00Z"), 1000, 400, 0, 0, 100, 0.002m, 0.0009m, 0m, false, false),
            // Served from another request's response: no cost of its own, its full cost saved.
            new("r2", Alpha, "m-a", "openai", At("2026-01-01T23:59:59.999Z"), 2000, 1000, 0, 0, 200, 0m, 0.00225m, 0.006m, true, false),
            new("r3", Alpha, "m-b", "anthropic", At("2026-01-02T00:00:00Z"), 5000, 3000, 1000, 500, 300, 0.01m, -0.0005m, 0m, false, true),
            new("r4", Beta, "m-c", "deepseek", At("2026-01-02T12:00:00Z"), 800, 0, 0, 0, 50, null, 0m, 0m, false, false),
            new("r5", null, "m-a", "openai", At("2026-01-03T08:00:00Z"), 1500, 1024, 0, 0, 80, 0.0015m, 0.0012m, 0m, false, false),
            new("r6", Beta, "m-a", "deepseek", At("2026-01-01T05:00:00Z"), 3000, 2048, 0, 0, 120, 0.0008m, 0.0004m, 0m, false, false),
        ]);
        foreach (var r in Rows)
        {
            await InsertUsageAsync(App.DatabaseConnectionString, r.RequestId, r.KeyId, r.Cost, r.Model, r.Provider, r.At,
                r.Prompt, r.CachedRead, r.Write5m, r.Write1h, r.Completion, r.CacheSavings, r.DedupSavings, r.Deduplicated, r.Estimated);
        }
        // The gateways' live view of alpha's quota.
        await App.RedisClient.GetDatabase().HashSetAsync(QuotaKey(Alpha), [new("spent", 12_500_000), new("reserved", 1_000_000)]);
    }

    public Task DisposeAsync() => App.DisposeAsync();

    private static DateTimeOffset At(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);
}

public sealed record SeededUsage(
    string RequestId, Guid? KeyId, string Model, string Provider, DateTimeOffset At, int Prompt, int CachedRead,
    int Write5m, int Write1h, int Completion, decimal? Cost, decimal CacheSavings, decimal DedupSavings,
    bool Deduplicated, bool Estimated);

public sealed class UsageApiTests(UsageApiFixture fixture) : IClassFixture<UsageApiFixture>
{
    private readonly HttpClient _client = fixture.App.Client;

    [Theory]
    [InlineData("key")]
    [InlineData("model")]
    [InlineData("provider")]
    [InlineData("day")]
    public async Task Report_rows_equal_the_sums_of_the_seeded_rows_for_each_grouping(string groupBy)
    {
        var report = await _client.GetJsonAsync($"/admin/usage?group_by={groupBy}");

        var expected = fixture.Rows.GroupBy(r => GroupOf(r, groupBy)).ToDictionary(g => g.Key ?? "<null>", g => g.ToList());
        var rows = report.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(groupBy, report.GetProperty("group_by").GetString());
        Assert.Equal(expected.Count, rows.Count);
        foreach (var row in rows)
        {
            var group = row.GetProperty("group").GetString() ?? "<null>";
            AssertSums(expected[group], row);
        }
        AssertSums(fixture.Rows, report.GetProperty("totals"));
        Assert.Equal(JsonValueKind.Null, report.GetProperty("totals").GetProperty("group").ValueKind);
    }

    [Fact]
    public async Task Report_totals_match_the_hand_computed_figures()
    {
        var totals = (await _client.GetJsonAsync("/admin/usage?group_by=model")).GetProperty("totals");

        Assert.Equal(6, totals.GetProperty("requests").GetInt64());
        Assert.Equal(13_300, totals.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(7_472, totals.GetProperty("cached_read_tokens").GetInt64());
        Assert.Equal(1_000, totals.GetProperty("cache_write_5m_tokens").GetInt64());
        Assert.Equal(500, totals.GetProperty("cache_write_1h_tokens").GetInt64());
        Assert.Equal(850, totals.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(0.0143m, totals.GetProperty("cost_usd").GetDecimal());
        Assert.Equal(0.00425m, totals.GetProperty("cache_savings_usd").GetDecimal());
        Assert.Equal(0.006m, totals.GetProperty("dedup_savings_usd").GetDecimal());
        Assert.Equal(1, totals.GetProperty("deduplicated_requests").GetInt64());
        Assert.Equal(1, totals.GetProperty("unpriced_requests").GetInt64());
        Assert.Equal(1, totals.GetProperty("estimated_requests").GetInt64());
        Assert.Equal(7_472d / 13_300d, totals.GetProperty("cached_token_ratio").GetDouble(), 12);
    }

    [Fact]
    public async Task Grouping_by_key_names_the_keys_and_keeps_configuration_keys_in_a_group_of_their_own()
    {
        var rows = (await _client.GetJsonAsync("/admin/usage?group_by=key")).GetProperty("rows").EnumerateArray().ToList();

        var alpha = Assert.Single(rows, r => r.GetProperty("group").GetString() == fixture.Alpha.ToString("D"));
        Assert.Equal("alpha", alpha.GetProperty("key_name").GetString());
        var unattributed = Assert.Single(rows, r => r.GetProperty("group").ValueKind == JsonValueKind.Null);
        Assert.Equal(1, unattributed.GetProperty("requests").GetInt64());
        // Ordered by cost, most expensive first.
        Assert.Equal(rows.Select(r => r.GetProperty("cost_usd").GetDecimal()).OrderDescending(), rows.Select(r => r.GetProperty("cost_usd").GetDecimal()));
    }

    [Fact]
    public async Task Day_groups_are_utc_dates_in_order()
    {
        var rows = (await _client.GetJsonAsync("/admin/usage?group_by=day")).GetProperty("rows").EnumerateArray()
            .Select(r => (r.GetProperty("group").GetString(), r.GetProperty("requests").GetInt64())).ToList();

        Assert.Equal([("2026-01-01", 3L), ("2026-01-02", 2L), ("2026-01-03", 1L)], rows);
    }

    [Fact]
    public async Task Window_includes_from_excludes_to_and_key_filter_restricts_to_one_key()
    {
        var window = await _client.GetJsonAsync(
            "/admin/usage?group_by=model&from=2026-01-01T23:59:59.999Z&to=2026-01-02T12:00:00Z");
        AssertSums(fixture.Rows.Where(r => r.RequestId is "r2" or "r3").ToList(), window.GetProperty("totals"));

        var alphaOnly = await _client.GetJsonAsync($"/admin/usage?group_by=provider&key_id={fixture.Alpha}");
        AssertSums(fixture.Rows.Where(r => r.KeyId == fixture.Alpha).ToList(), alphaOnly.GetProperty("totals"));
        Assert.Equal(2, alphaOnly.GetProperty("rows").GetArrayLength());
    }

    [Fact]
    public async Task Empty_window_reports_zero_totals_and_no_rows()
    {
        var report = await _client.GetJsonAsync("/admin/usage?group_by=model&from=2030-01-01T00:00:00Z");

        Assert.Equal(0, report.GetProperty("rows").GetArrayLength());
        Assert.Equal(0, report.GetProperty("totals").GetProperty("requests").GetInt64());
        Assert.Equal(0m, report.GetProperty("totals").GetProperty("cost_usd").GetDecimal());
        Assert.Equal(0d, report.GetProperty("totals").GetProperty("cached_token_ratio").GetDouble());
    }

    [Theory]
    [InlineData("group_by=week", "group_by")]
    [InlineData("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to")]
    [InlineData("from=yesterday", null)]
    [InlineData("key_id=not-a-guid", null)]
    public async Task Invalid_report_query_is_rejected_with_400(string query, string? invalidField)
    {
        using var response = await _client.GetAsync($"/admin/usage?{query}");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        if (invalidField is not null)
        {
            Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("errors").TryGetProperty(invalidField, out _), text);
        }
    }

    [Fact]
    public async Task Key_usage_shows_all_time_spend_against_the_quota_and_the_gateways_live_view()
    {
        var usage = await _client.GetJsonAsync($"/admin/api-keys/{fixture.Alpha}/usage");

        Assert.Equal("alpha", usage.GetProperty("name").GetString());
        Assert.Equal(10m, usage.GetProperty("quota_usd").GetDecimal());
        Assert.Equal(0.012m, usage.GetProperty("spent_usd").GetDecimal());
        Assert.Equal(9.988m, usage.GetProperty("remaining_usd").GetDecimal());
        Assert.Equal(0.0125m, usage.GetProperty("gateway_spent_usd").GetDecimal());
        Assert.Equal(0.001m, usage.GetProperty("gateway_reserved_usd").GetDecimal());
        AssertSums(fixture.Rows.Where(r => r.KeyId == fixture.Alpha).ToList(), usage.GetProperty("usage"));
    }

    [Fact]
    public async Task Key_usage_window_narrows_the_usage_but_not_the_spend_against_the_quota()
    {
        var usage = await _client.GetJsonAsync($"/admin/api-keys/{fixture.Alpha}/usage?from=2026-01-02T00:00:00Z");

        Assert.Equal(0.012m, usage.GetProperty("spent_usd").GetDecimal());
        AssertSums(fixture.Rows.Where(r => r.RequestId == "r3").ToList(), usage.GetProperty("usage"));
    }

    [Fact]
    public async Task Key_without_quota_has_no_remaining_budget_and_unknown_key_is_404()
    {
        var beta = await _client.GetJsonAsync($"/admin/api-keys/{fixture.Beta}/usage");
        using var unknown = await _client.GetAsync($"/admin/api-keys/{Guid.NewGuid()}/usage");

        Assert.Equal(JsonValueKind.Null, beta.GetProperty("quota_usd").ValueKind);
        Assert.Equal(JsonValueKind.Null, beta.GetProperty("remaining_usd").ValueKind);
        Assert.Equal(0.0008m, beta.GetProperty("spent_usd").GetDecimal()); // r4 is unpriced: no spend
        Assert.Equal(JsonValueKind.Null, beta.GetProperty("gateway_spent_usd").ValueKind);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    private static string? GroupOf(SeededUsage row, string groupBy) => groupBy switch
    {
        "key" => row.KeyId?.ToString("D"),
        "model" => row.Model,
        "provider" => row.Provider,
        "day" => row.At.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
        _ => throw new ArgumentOutOfRangeException(nameof(groupBy)),
    };

    private static void AssertSums(IReadOnlyCollection<SeededUsage> rows, JsonElement actual)
    {
        var prompt = rows.Sum(r => (long)r.Prompt);
        var cached = rows.Sum(r => (long)r.CachedRead);
        Assert.Equal(rows.Count, actual.GetProperty("requests").GetInt64());
        Assert.Equal(prompt, actual.GetProperty("prompt_tokens").GetInt64());
        Assert.Equal(cached, actual.GetProperty("cached_read_tokens").GetInt64());
        Assert.Equal(rows.Sum(r => (long)r.Write5m), actual.GetProperty("cache_write_5m_tokens").GetInt64());
        Assert.Equal(rows.Sum(r => (long)r.Write1h), actual.GetProperty("cache_write_1h_tokens").GetInt64());
        Assert.Equal(rows.Sum(r => (long)r.Completion), actual.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(rows.Sum(r => r.Cost ?? 0m), actual.GetProperty("cost_usd").GetDecimal());
        Assert.Equal(rows.Sum(r => r.CacheSavings), actual.GetProperty("cache_savings_usd").GetDecimal());
        Assert.Equal(rows.Sum(r => r.DedupSavings), actual.GetProperty("dedup_savings_usd").GetDecimal());
        Assert.Equal(rows.Count(r => r.Deduplicated), actual.GetProperty("deduplicated_requests").GetInt64());
        Assert.Equal(rows.Count(r => r.Cost is null), actual.GetProperty("unpriced_requests").GetInt64());
        Assert.Equal(rows.Count(r => r.Estimated), actual.GetProperty("estimated_requests").GetInt64());
        Assert.Equal(prompt == 0 ? 0d : (double)cached / prompt, actual.GetProperty("cached_token_ratio").GetDouble(), 12);
    }
}
