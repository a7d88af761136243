using System.Text.Json;
using Npgsql;
using NpgsqlTypes;

namespace TokenRouter.Tests.Admin.Console;

/// <summary>
/// A month of plausible usage for the screenshots and the layout checks: a few keys (made through the REST API, so
/// they are real keys), price overrides, and ledger rows written straight into <c>usage_records</c> (as the ledger
/// consumer would) with a cached-token share that grows over the month, as cache convergence makes it do.
/// Deterministic: the same rows every run, relative to today.
/// </summary>
internal static class ConsoleDemoData
{
    private sealed record Model(string Name, string Provider, decimal Input, decimal Cached, decimal Write5m, decimal Output);

    private static readonly Model[] Models =
    [
        new("gpt-4o", "openai", 2.5m, 1.25m, 0m, 10m),
        new("claude-sonnet-4-5", "anthropic", 3m, 0.3m, 3.75m, 15m),
        new("deepseek-chat", "deepseek", 0.27m, 0.07m, 0m, 1.1m),
    ];

    public static async Task<Dictionary<string, Guid>> SeedAsync(HttpClient admin, string databaseConnectionString, DateTimeOffset now)
    {
        var keys = new Dictionary<string, Guid>();
        async Task<Guid> Create(object body)
        {
            var created = await admin.CreateKeyAsync(body);
            return Guid.Parse(created.GetProperty("id").GetString()!);
        }
        keys["alice-laptop"] = await Create(new { name = "alice-laptop", quota_usd = 50 });
        keys["ci-pipeline"] = await Create(new { name = "ci-pipeline", quota_usd = 200, rpm_limit = 120, tpm_limit = 400_000 });
        keys["data-team"] = await Create(new { name = "data-team", rpm_limit = 600 });
        keys["support-bot"] = await Create(new { name = "support-bot", quota_usd = 25, expires_at = now.AddDays(60) });
        keys["staging"] = await Create(new { name = "staging", quota_usd = 10 });
        keys["bob-old-laptop"] = await Create(new { name = "bob-old-laptop", quota_usd = 20 });
        (await admin.PatchJsonAsync($"/admin/api-keys/{keys["staging"]}", """{"enabled":false}""")).EnsureSuccessStatusCode();
        (await admin.DeleteAsync($"/admin/api-keys/{keys["bob-old-laptop"]}")).EnsureSuccessStatusCode();

        foreach (var (model, price) in new[]
                 {
                     ("gpt-4o", new { input = 2.5, cached_input = 1.25, cache_write_5m = 0, cache_write_1h = 0, output = 10 }),
                     ("openai/ft-support-bot", new { input = 3.75, cached_input = 1.875, cache_write_5m = 0, cache_write_1h = 0, output = 15 }),
                 })
        {
            using var content = new StringContent(JsonSerializer.Serialize(price), System.Text.Encoding.UTF8, "application/json");
            (await admin.PutAsync($"/admin/pricing/{model}", content)).EnsureSuccessStatusCode();
        }

        var random = new Random(20261201);
        var today = new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero);
        await using var connection = new NpgsqlConnection(databaseConnectionString);
        await connection.OpenAsync();
        await using var writer = await connection.BeginBinaryImportAsync("""
            COPY usage_records (request_id, api_key_id, model, provider, prompt_tokens, cached_read_tokens,
                cache_write5m_tokens, cache_write1h_tokens, completion_tokens, cost_usd, cache_savings_usd,
                dedup_savings_usd, unpriced, deduplicated, stream, estimated, status, latency_ms, created_at)
            FROM STDIN (FORMAT BINARY)
            """);
        var users = new (string Key, double Volume, int[] ModelIndexes)[]
        {
            ("alice-laptop", 1.0, [0, 1]),
            ("ci-pipeline", 1.8, [0, 2]),
            ("data-team", 1.3, [1, 2]),
            ("support-bot", 0.7, [0]),
        };
        var sequence = 0;
        for (var daysAgo = 29; daysAgo >= 0; daysAgo--)
        {
            var day = today.AddDays(-daysAgo);
            var weekday = day.DayOfWeek is DayOfWeek.Saturday or DayOfWeek.Sunday ? 0.35 : 1.0;
            // Cache convergence at work: the share of prompt tokens read from cache climbs through the month.
            var cachedShare = 0.38 + 0.42 * (29 - daysAgo) / 29.0;
            foreach (var (key, volume, modelIndexes) in users)
            {
                var requests = (int)(random.Next(6, 16) * volume * weekday) + 1;
                for (var r = 0; r < requests; r++)
                {
                    var model = Models[modelIndexes[random.Next(modelIndexes.Length)]];
                    var prompt = random.Next(4_000, 30_000);
                    var cached = (int)(prompt * Math.Clamp(cachedShare + (random.NextDouble() - 0.5) * 0.2, 0, 0.95));
                    var write5m = model.Write5m > 0 && random.NextDouble() < 0.15 ? random.Next(1_000, 4_000) : 0;
                    var completion = random.Next(150, 1_200);
                    var deduplicated = key == "ci-pipeline" && random.NextDouble() < 0.12;
                    var full = prompt * model.Input + completion * model.Output;
                    var cost = ((prompt - cached - write5m) * model.Input + cached * model.Cached + write5m * model.Write5m
                                + completion * model.Output) / 1_000_000m;
                    var cacheSavings = (prompt * model.Input - (prompt - cached - write5m) * model.Input - cached * model.Cached
                                        - write5m * model.Write5m) / 1_000_000m;
                    var at = day.AddSeconds(random.Next(0, 86_400));
                    if (at > now) at = now.AddSeconds(-random.Next(1, 3_600));
                    await writer.StartRowAsync();
                    await writer.WriteAsync($"demo-{++sequence}", NpgsqlDbType.Text);
                    await writer.WriteAsync(keys[key], NpgsqlDbType.Uuid);
                    await writer.WriteAsync(model.Name, NpgsqlDbType.Varchar);
                    await writer.WriteAsync(model.Provider, NpgsqlDbType.Varchar);
                    await writer.WriteAsync(prompt, NpgsqlDbType.Integer);
                    await writer.WriteAsync(cached, NpgsqlDbType.Integer);
                    await writer.WriteAsync(write5m, NpgsqlDbType.Integer);
                    await writer.WriteAsync(0, NpgsqlDbType.Integer);
                    await writer.WriteAsync(completion, NpgsqlDbType.Integer);
                    await writer.WriteAsync(deduplicated ? 0m : cost, NpgsqlDbType.Numeric);
                    await writer.WriteAsync(deduplicated ? 0m : cacheSavings, NpgsqlDbType.Numeric);
                    await writer.WriteAsync(deduplicated ? full / 1_000_000m : 0m, NpgsqlDbType.Numeric);
                    await writer.WriteAsync(false, NpgsqlDbType.Boolean);
                    await writer.WriteAsync(deduplicated, NpgsqlDbType.Boolean);
                    await writer.WriteAsync(random.NextDouble() < 0.6, NpgsqlDbType.Boolean);
                    await writer.WriteAsync(false, NpgsqlDbType.Boolean);
                    await writer.WriteAsync(200, NpgsqlDbType.Integer);
                    await writer.WriteAsync(random.Next(300, 4_000), NpgsqlDbType.Integer);
                    await writer.WriteAsync(at.UtcDateTime, NpgsqlDbType.TimestampTz);
                }
            }
        }
        // A model nobody priced: recorded and flagged, never billed $0.
        for (var i = 0; i < 7; i++)
        {
            await writer.StartRowAsync();
            await writer.WriteAsync($"demo-unpriced-{i}", NpgsqlDbType.Text);
            await writer.WriteAsync(keys["data-team"], NpgsqlDbType.Uuid);
            await writer.WriteAsync("my-local-llama", NpgsqlDbType.Varchar);
            await writer.WriteAsync("openai", NpgsqlDbType.Varchar);
            foreach (var tokens in new[] { 1_200, 0, 0, 0, 300 }) await writer.WriteAsync(tokens, NpgsqlDbType.Integer);
            await writer.WriteNullAsync();
            await writer.WriteAsync(0m, NpgsqlDbType.Numeric);
            await writer.WriteAsync(0m, NpgsqlDbType.Numeric);
            await writer.WriteAsync(true, NpgsqlDbType.Boolean);
            await writer.WriteAsync(false, NpgsqlDbType.Boolean);
            await writer.WriteAsync(false, NpgsqlDbType.Boolean);
            await writer.WriteAsync(false, NpgsqlDbType.Boolean);
            await writer.WriteAsync(200, NpgsqlDbType.Integer);
            await writer.WriteAsync(900, NpgsqlDbType.Integer);
            await writer.WriteAsync(now.AddDays(-i).AddHours(-1).UtcDateTime, NpgsqlDbType.TimestampTz);
        }
        await writer.CompleteAsync();
        return keys;
    }
}
