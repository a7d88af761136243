using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using TokenRouter.Bench;

namespace TokenRouter.Replay;

internal sealed record RunSettings(
    Uri Gateway,
    string Key,
    string SimulatorKey,
    string Mode,
    string Label,
    IReadOnlyList<string> Vendors,
    int SessionCount,
    int Concurrency,
    TimeSpan RequestTimeout,
    int MaxRequests,
    TimeSpan RunDeadline,
    string ResultsPath,
    string? WorkloadPath);

/// <summary>
/// Replays the selected sessions turn by turn — each session's requests in order, <see cref="RunSettings.Concurrency"/>
/// sessions at a time — for each vendor, after resetting the simulator, and records the usage the upstream reported.
/// </summary>
internal sealed class Runner(RunSettings settings)
{
    public static readonly string[] AllVendors = ["openai", "deepseek", "anthropic"];
    private const int MaxSampleErrors = 5;

    public async Task<int> RunAsync()
    {
        var all = WorkloadFile.Load(WorkloadFile.Locate(settings.WorkloadPath));
        var selected = Select(all, settings.SessionCount);
        var mode = settings.Mode;
        Console.Error.WriteLine($"replay: mode={mode} label={settings.Label} sessions={selected.Count}/{all.Count} concurrency={settings.Concurrency} " +
                                $"requests≤{settings.MaxRequests} gateway={settings.Gateway}");

        // Every position gets a client program round-robin; BEST sends the canonical form of the same conversation.
        var sessions = new List<ClientSession>(selected.Count);
        for (var i = 0; i < selected.Count; i++)
        {
            var client = (ClientProgram)(i % 4);
            var grows = client == ClientProgram.B && i / 4 % 2 == 0;
            sessions.Add(ClientSession.Create(selected[i], mode == "best" ? ClientProgram.Canonical : client, grows));
        }
        var clientOf = sessions.Select((_, i) => ((ClientProgram)(i % 4)).ToString()).ToArray();

        using var http = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = settings.Concurrency * 2,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            BaseAddress = settings.Gateway,
            Timeout = settings.RequestTimeout,
        };

        var failed = false;
        foreach (var vendor in settings.Vendors)
        {
            var result = await RunVendorAsync(http, vendor, sessions, clientOf);
            await File.AppendAllTextAsync(settings.ResultsPath, JsonSerializer.Serialize(result, ResultsJson.Default.RunResult) + "\n");
            var t = result.Total;
            Console.WriteLine($"{vendor,-9} {settings.Label,-26} requests={t.Requests} errors={t.Errors} dedup={t.Deduplicated} prompt={t.PromptTokens} " +
                              $"cached={t.CachedRatio:P1} cost={t.CostRatio:F3} ({result.Seconds:F1}s)");
            foreach (var e in result.SampleErrors) Console.Error.WriteLine($"  error: {e}");
            failed |= t.Errors > 0;
        }
        return failed ? 2 : 0;
    }

    /// <summary>An even spread over the file (so a subset mixes tau-bench tasks, trials and ToolBench), in file order.</summary>
    public static List<WorkloadSession> Select(List<WorkloadSession> all, int count)
    {
        if (count <= 0 || count >= all.Count) return all;
        var picked = new List<WorkloadSession>(count);
        for (var i = 0; i < count; i++) picked.Add(all[(int)((long)i * all.Count / count)]);
        return picked;
    }

    private async Task<RunResult> RunVendorAsync(HttpClient http, string vendor, List<ClientSession> sessions, string[] clientOf)
    {
        using (var resetRequest = SimulatorRequest(HttpMethod.Post, "sim/reset"))
        using (var reset = await http.SendAsync(resetRequest))
        {
            if (reset.StatusCode == HttpStatusCode.Unauthorized)
                throw new InvalidOperationException($"POST /sim/reset answered 401: --sim-key is not the Simulator:ApiKey of the gateway at {settings.Gateway}.");
            if (!reset.IsSuccessStatusCode)
                throw new InvalidOperationException($"POST /sim/reset answered {(int)reset.StatusCode}: is the simulator enabled at {settings.Gateway}?");
        }

        var model = "sim-" + vendor;
        var path = (settings.Mode, vendor) switch
        {
            ("gateway", "anthropic") => "v1/messages",
            ("gateway", _) => "v1/chat/completions",
            (_, "openai") => "sim/openai/v1/chat/completions",
            (_, "deepseek") => "sim/deepseek/chat/completions",
            (_, "anthropic") => "sim/anthropic/v1/messages",
            _ => throw new ArgumentException($"Unknown vendor '{vendor}'."),
        };
        var best = settings.Mode == "best";
        var byClient = new Dictionary<string, UsageTotals>();
        foreach (var c in clientOf.Distinct()) byClient[c] = new UsageTotals();
        var total = new UsageTotals();
        var errors = new List<string>();
        var gate = new Lock();
        var budget = settings.MaxRequests;
        using var deadline = new CancellationTokenSource(settings.RunDeadline);
        var clock = Stopwatch.StartNew();

        try
        {
            await ReplayAsync();
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            errors.Add($"run deadline of {settings.RunDeadline.TotalSeconds:F0}s reached: the replay was cut short");
            total.Errors++;
        }

        async Task ReplayAsync() => await Parallel.ForEachAsync(Enumerable.Range(0, sessions.Count),
            new ParallelOptions { MaxDegreeOfParallelism = settings.Concurrency, CancellationToken = deadline.Token },
            async (i, ct) =>
            {
                var s = sessions[i];
                var previousK = 0;
                foreach (var k in s.RequestPoints)
                {
                    if (Interlocked.Decrement(ref budget) < 0) return;
                    var body = vendor == "anthropic"
                        ? RequestFactory.Anthropic(s, k, previousK, model, idealBreakpoints: best)
                        : RequestFactory.OpenAI(s, k, previousK, model);
                    previousK = k;
                    var one = await SendAsync(http, path, vendor, body, errors, gate, ct);
                    lock (gate)
                    {
                        total.Add(one);
                        byClient[clientOf[i]].Add(one);
                    }
                }
            });

        clock.Stop();
        return new RunResult
        {
            Vendor = vendor,
            Mode = settings.Mode,
            Label = settings.Label,
            Sessions = sessions.Count,
            Concurrency = settings.Concurrency,
            Seconds = clock.Elapsed.TotalSeconds,
            Total = total,
            ByClient = byClient,
            Simulator = await ReadSimulatorAsync(http, vendor),
            SampleErrors = errors,
        };
    }

    private async Task<UsageTotals> SendAsync(HttpClient http, string path, string vendor, byte[] body, List<string> errors, Lock gate, CancellationToken ct)
    {
        var one = new UsageTotals { Requests = 1 };
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        // Through the gateway: the client key; straight to /sim: the simulator's own key.
        var key = settings.Mode == "gateway" ? settings.Key : settings.SimulatorKey;
        if (vendor == "anthropic") request.Headers.Add("x-api-key", key);
        else request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (vendor == "anthropic") request.Headers.Add("anthropic-version", "2023-06-01");

        try
        {
            using var response = await http.SendAsync(request, ct);
            var bytes = await response.Content.ReadAsByteArrayAsync(ct);
            if (!response.IsSuccessStatusCode)
            {
                one.Errors = 1;
                Note(errors, gate, $"{(int)response.StatusCode} {System.Text.Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 400))}");
                return one;
            }
            if (response.Headers.TryGetValues("x-tokenrouter-deduplicated", out var dedup) && dedup.Contains("true"))
            {
                // Served from another request's upstream call: the provider billed nothing for it.
                one.Deduplicated = 1;
                return one;
            }
            using var doc = JsonDocument.Parse(bytes);
            if (!doc.RootElement.TryGetProperty("usage", out var usage))
            {
                one.Errors = 1;
                Note(errors, gate, "response without usage");
                return one;
            }
            ReadUsage(vendor, usage, one);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !ct.IsCancellationRequested)
        {
            one.Errors = 1;
            Note(errors, gate, $"{e.GetType().Name}: {e.Message}");
        }
        return one;
    }

    private static void ReadUsage(string vendor, JsonElement usage, UsageTotals one)
    {
        switch (vendor)
        {
            case "anthropic":
                var input = Long(usage, "input_tokens");
                var read = Long(usage, "cache_read_input_tokens");
                var creation = Long(usage, "cache_creation_input_tokens");
                long w1h = 0;
                if (usage.TryGetProperty("cache_creation", out var split) && split.ValueKind == JsonValueKind.Object)
                    w1h = Long(split, "ephemeral_1h_input_tokens");
                one.PromptTokens = input + read + creation;
                one.CachedTokens = read;
                one.CacheWrite1hTokens = w1h;
                one.CacheWrite5mTokens = creation - w1h;
                break;
            case "deepseek":
                one.PromptTokens = Long(usage, "prompt_tokens");
                one.CachedTokens = Long(usage, "prompt_cache_hit_tokens");
                break;
            default:
                one.PromptTokens = Long(usage, "prompt_tokens");
                one.CachedTokens = usage.TryGetProperty("prompt_tokens_details", out var d) && d.ValueKind == JsonValueKind.Object ? Long(d, "cached_tokens") : 0;
                break;
        }
    }

    private static long Long(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    private static void Note(List<string> errors, Lock gate, string message)
    {
        lock (gate)
        {
            if (errors.Count < MaxSampleErrors) errors.Add(message);
        }
    }

    /// <summary>A request to the simulator's control routes, with its key.</summary>
    private HttpRequestMessage SimulatorRequest(HttpMethod method, string path)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.SimulatorKey);
        return request;
    }

    private async Task<SimCounters?> ReadSimulatorAsync(HttpClient http, string vendor)
    {
        try
        {
            using var request = SimulatorRequest(HttpMethod.Get, "sim/stats");
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            using var doc = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
            if (!doc.RootElement.TryGetProperty("formats", out var formats) || !formats.TryGetProperty(vendor, out var f)) return null;
            return new SimCounters
            {
                Calls = Long(f, "calls"),
                Errors = Long(f, "errors"),
                PromptTokens = Long(f, "promptTokens"),
                CacheReadTokens = Long(f, "cacheReadTokens"),
                CacheWrite5mTokens = Long(f, "cacheWrite5mTokens"),
                CacheWrite1hTokens = Long(f, "cacheWrite1hTokens"),
            };
        }
        catch (Exception e) when (e is HttpRequestException or JsonException)
        {
            return null;
        }
    }
}
