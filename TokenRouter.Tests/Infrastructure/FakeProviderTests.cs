using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using Microsoft.AspNetCore.Http;
using OpenAI;
using OpenAI.Chat;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>Proves the fake provider harness speaks the real wire formats that the official SDKs accept.</summary>
public sealed class FakeProviderTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);
    private const string WeatherArguments = """{"location":"Paris, France","unit":"celsius","days":[1,2,3]}""";

    private FakeProvider _provider = null!;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public async Task InitializeAsync() => _provider = await FakeProvider.StartAsync();

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _provider.DisposeAsync();
    }

    // ───────────────────────────── OpenAI SDK ─────────────────────────────

    [Fact]
    public async Task OpenAISdk_NonStreaming_ReceivesScriptedTextAndUsage()
    {
        _provider.RespondOpenAIText("Bonjour, le monde!", new OpenAIUsage(Prompt: 120, Completion: 7, Cached: 64));

        ChatCompletion completion = await OpenAIChat().CompleteChatAsync([new UserChatMessage("Say hello in French")]);

        Assert.Equal("Bonjour, le monde!", Assert.Single(completion.Content).Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(120, completion.Usage.InputTokenCount);
        Assert.Equal(7, completion.Usage.OutputTokenCount);
        Assert.Equal(127, completion.Usage.TotalTokenCount);
        Assert.Equal(64, completion.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal("gpt-4o-mini", completion.Model);
    }

    [Fact]
    public async Task OpenAISdk_Streaming_ReceivesTextInSeveralChunksAndTheUsageChunk()
    {
        const string text = "Streaming works across several delta chunks.";
        _provider.RespondOpenAIText(text, new OpenAIUsage(Prompt: 50, Completion: 9, Cached: 32));

        var contentChunks = 0;
        var received = new StringBuilder();
        ChatFinishReason? finishReason = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in OpenAIChat().CompleteChatStreamingAsync([new UserChatMessage("stream please")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                contentChunks++;
                received.Append(part.Text);
            }

            finishReason ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.Equal(text, received.ToString());
        Assert.True(contentChunks >= 3, $"expected the text split into several chunks, got {contentChunks}");
        Assert.Equal(ChatFinishReason.Stop, finishReason);
        Assert.NotNull(usage);
        Assert.Equal(50, usage.InputTokenCount);
        Assert.Equal(9, usage.OutputTokenCount);
        Assert.Equal(32, usage.InputTokenDetails.CachedTokenCount);
    }

    [Fact]
    public async Task OpenAISdk_NonStreaming_ReceivesToolCallWithItsArguments()
    {
        _provider.RespondOpenAIToolCall("get_weather", WeatherArguments, new OpenAIUsage(80, 20));

        ChatCompletion completion = await OpenAIChat().CompleteChatAsync(
            [new UserChatMessage("Weather in Paris?")],
            new ChatCompletionOptions { Tools = { WeatherTool() } });

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("call_", call.Id, StringComparison.Ordinal);
        Assert.Equal(WeatherArguments, call.FunctionArguments.ToString());
        Assert.Equal(20, completion.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task OpenAISdk_Streaming_ReassemblesToolCallArgumentsFromPieces()
    {
        _provider.RespondOpenAIToolCall("get_weather", WeatherArguments, new OpenAIUsage(80, 20));

        string? toolCallId = null;
        string? functionName = null;
        var argumentPieces = 0;
        var arguments = new StringBuilder();
        ChatFinishReason? finishReason = null;
        await foreach (var update in OpenAIChat().CompleteChatStreamingAsync(
                           [new UserChatMessage("Weather in Paris?")],
                           new ChatCompletionOptions { Tools = { WeatherTool() } }))
        {
            foreach (var toolUpdate in update.ToolCallUpdates)
            {
                Assert.Equal(0, toolUpdate.Index);
                toolCallId ??= toolUpdate.ToolCallId;
                functionName ??= toolUpdate.FunctionName;
                var piece = toolUpdate.FunctionArgumentsUpdate?.ToString() ?? "";
                if (piece.Length > 0)
                {
                    argumentPieces++;
                    arguments.Append(piece);
                }
            }

            finishReason ??= update.FinishReason;
        }

        Assert.Equal("get_weather", functionName);
        Assert.StartsWith("call_", toolCallId, StringComparison.Ordinal);
        Assert.Equal(WeatherArguments, arguments.ToString());
        Assert.True(argumentPieces >= 3, $"expected the arguments split into pieces, got {argumentPieces}");
        Assert.Equal(ChatFinishReason.ToolCalls, finishReason);
    }

    [Fact]
    public async Task OpenAISdk_Requests_AreRecordedWithBodyAndAuthorizationHeader()
    {
        _provider.RespondOpenAIText("ok", new OpenAIUsage(5, 1));

        await foreach (var _ in OpenAIChat().CompleteChatStreamingAsync([new UserChatMessage("record me")]))
        {
        }

        var request = Assert.Single(_provider.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/v1/chat/completions", request.Path);
        Assert.Equal("Bearer sk-test-openai", request.Headers["authorization"]);
        Assert.StartsWith("application/json", request.Header("Content-Type"), StringComparison.Ordinal);
        Assert.Equal("gpt-4o-mini", request.Model);
        Assert.True(request.IsStreaming);
        var json = request.Json!.Value;
        Assert.Equal("record me", json.GetProperty("messages")[0].GetProperty("content").GetString());
        Assert.Contains("record me", request.BodyText, StringComparison.Ordinal);
        Assert.Equal(Encoding.UTF8.GetBytes(request.BodyText), request.Body);
    }

    [Fact]
    public async Task OpenAISdk_ErrorResponse_SurfacesAsClientResultExceptionWithStatus()
    {
        _provider.RespondError(400, FakeResponses.OpenAIErrorBody("Invalid model", "invalid_request_error", "model_not_found"));

        var error = await Assert.ThrowsAsync<ClientResultException>(
            () => OpenAIChat().CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(400, error.Status);
        Assert.Contains("Invalid model", error.Message, StringComparison.Ordinal);
    }

    // ───────────────────────────── OpenAI wire format ─────────────────────────────

    [Fact]
    public async Task OpenAIStream_WithIncludeUsage_EndsWithUsageChunkWithEmptyChoicesThenDone()
    {
        _provider.RespondOpenAIText("abcdefgh", new OpenAIUsage(11, 4, 3));

        var events = await PostSseAsync("/v1/chat/completions",
            """{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}""");

        Assert.All(events, e => Assert.Null(e.Event));
        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e.Data).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.All(chunks, c => Assert.Equal("gpt-4o", c.GetProperty("model").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());

        var first = chunks[0].GetProperty("choices")[0].GetProperty("delta");
        Assert.Equal("assistant", first.GetProperty("role").GetString());

        var usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        var usage = usageChunk.GetProperty("usage");
        Assert.Equal(11, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(15, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(3, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());

        var finish = chunks[^2].GetProperty("choices")[0];
        Assert.Equal("stop", finish.GetProperty("finish_reason").GetString());
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));

        var text = string.Concat(chunks.SkipLast(1)
            .Select(c => c.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            .Select(d => d.GetProperty("content").GetString()));
        Assert.Equal("abcdefgh", text);
    }

    [Fact]
    public async Task OpenAIStream_WithoutIncludeUsage_HasNoUsageAnywhere()
    {
        _provider.RespondOpenAIText("abcdefgh", new OpenAIUsage(11, 4));

        var events = await PostSseAsync("/v1/chat/completions",
            """{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}""");

        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e.Data).RootElement).ToList();
        Assert.All(chunks, c => Assert.False(c.TryGetProperty("usage", out _)));
        Assert.All(chunks, c => Assert.Equal(1, c.GetProperty("choices").GetArrayLength()));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task DeepSeek_NonStreaming_ReportsPromptCacheHitAndMissTokens()
    {
        _provider.RespondDeepSeekText("深度求索", new OpenAIUsage(Prompt: 100, Completion: 10, Cached: 60));

        using var response = await _http.PostAsync(
            new Uri(_provider.DeepSeekBaseUrl, "/chat/completions"),
            JsonContent("""{"model":"deepseek-chat","messages":[{"role":"user","content":"x"}]}"""));

        response.EnsureSuccessStatusCode();
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("深度求索", body.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        var usage = body.RootElement.GetProperty("usage");
        Assert.Equal(60, usage.GetProperty("prompt_cache_hit_tokens").GetInt32());
        Assert.Equal(40, usage.GetProperty("prompt_cache_miss_tokens").GetInt32());
        Assert.Equal(100, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal("/chat/completions", _provider.LastRequest!.Path);
    }

    [Fact]
    public async Task DeepSeek_ViaOpenAISdkStreaming_ReceivesTextAndUsageWithCacheFields()
    {
        _provider.RespondDeepSeekText("cached answer", new OpenAIUsage(Prompt: 100, Completion: 3, Cached: 96));
        var client = new ChatClient("deepseek-chat", new ApiKeyCredential("sk-deepseek"),
            new OpenAIClientOptions { Endpoint = _provider.DeepSeekBaseUrl, RetryPolicy = new ClientRetryPolicy(0) });

        var received = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("x")]))
        {
            received.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
            usage ??= update.Usage;
        }

        Assert.Equal("cached answer", received.ToString());
        Assert.NotNull(usage);
        Assert.Equal(100, usage.InputTokenCount);
        Assert.Equal("/chat/completions", _provider.LastRequest!.Path);

        var events = await PostSseAsync("/chat/completions",
            """{"model":"deepseek-chat","stream":true,"stream_options":{"include_usage":true},"messages":[]}""");
        using var usageChunk = JsonDocument.Parse(events[^2].Data);
        Assert.Equal(96, usageChunk.RootElement.GetProperty("usage").GetProperty("prompt_cache_hit_tokens").GetInt32());
        Assert.Equal(4, usageChunk.RootElement.GetProperty("usage").GetProperty("prompt_cache_miss_tokens").GetInt32());
    }

    // ───────────────────────────── Anthropic SDK ─────────────────────────────

    [Fact]
    public async Task AnthropicSdk_NonStreaming_ReceivesScriptedTextAndCacheUsage()
    {
        _provider.RespondAnthropicText("Hello from Claude.",
            new AnthropicUsage(Input: 12, Output: 6, CacheRead: 900, CacheWrite5m: 40, CacheWrite1h: 2));

        var message = await AnthropicClient().Messages.Create(AnthropicParams("Say hello"));

        var block = Assert.Single(message.Content);
        Assert.True(block.TryPickText(out var text));
        Assert.Equal("Hello from Claude.", text.Text);
        Assert.Equal("end_turn", message.StopReason!.Raw());
        Assert.Equal(12, message.Usage.InputTokens);
        Assert.Equal(6, message.Usage.OutputTokens);
        Assert.Equal(900, message.Usage.CacheReadInputTokens);
        Assert.Equal(42, message.Usage.CacheCreationInputTokens);
        Assert.Equal(40, message.Usage.CacheCreation!.Ephemeral5mInputTokens);
        Assert.Equal(2, message.Usage.CacheCreation.Ephemeral1hInputTokens);
        Assert.StartsWith("msg_", message.ID, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnthropicSdk_Streaming_ReceivesTextDeltasAndFinalUsage()
    {
        const string text = "Claude streams text in several deltas.";
        _provider.RespondAnthropicText(text, new AnthropicUsage(Input: 30, Output: 11, CacheRead: 500, CacheWrite5m: 7));

        var received = new StringBuilder();
        var deltas = 0;
        long? startCacheRead = null;
        long? finalOutput = null;
        string? stopReason = null;
        var sawStop = false;
        await foreach (var streamEvent in AnthropicClient().Messages.CreateStreaming(AnthropicParams("stream please")))
        {
            if (streamEvent.TryPickStart(out var start))
            {
                startCacheRead = start.Message.Usage.CacheReadInputTokens;
            }
            else if (streamEvent.TryPickContentBlockDelta(out var blockDelta) && blockDelta.Delta.TryPickText(out var textDelta))
            {
                deltas++;
                received.Append(textDelta.Text);
            }
            else if (streamEvent.TryPickDelta(out var messageDelta))
            {
                finalOutput = messageDelta.Usage.OutputTokens;
                stopReason = messageDelta.Delta.StopReason?.Raw();
            }
            else if (streamEvent.TryPickStop(out _))
            {
                sawStop = true;
            }
        }

        Assert.Equal(text, received.ToString());
        Assert.True(deltas >= 3, $"expected several text deltas, got {deltas}");
        Assert.Equal(500, startCacheRead);
        Assert.Equal(11, finalOutput);
        Assert.Equal("end_turn", stopReason);
        Assert.True(sawStop);
    }

    [Fact]
    public async Task AnthropicSdk_NonStreaming_ReceivesToolUseWithItsInput()
    {
        _provider.RespondAnthropicToolUse("get_weather", WeatherArguments, new AnthropicUsage(70, 25));

        var message = await AnthropicClient().Messages.Create(AnthropicParams("Weather in Paris?"));

        var block = Assert.Single(message.Content);
        Assert.True(block.TryPickToolUse(out var toolUse));
        Assert.Equal("get_weather", toolUse.Name);
        Assert.StartsWith("toolu_", toolUse.ID, StringComparison.Ordinal);
        Assert.Equal("Paris, France", toolUse.Input["location"].GetString());
        Assert.Equal(3, toolUse.Input["days"].GetArrayLength());
        Assert.Equal("tool_use", message.StopReason!.Raw());
    }

    [Fact]
    public async Task AnthropicSdk_Streaming_ReassemblesToolUseInputFromJsonDeltas()
    {
        _provider.RespondAnthropicToolUse("get_weather", WeatherArguments, new AnthropicUsage(70, 25));

        string? toolName = null;
        var pieces = 0;
        var input = new StringBuilder();
        string? stopReason = null;
        await foreach (var streamEvent in AnthropicClient().Messages.CreateStreaming(AnthropicParams("Weather in Paris?")))
        {
            if (streamEvent.TryPickContentBlockStart(out var blockStart) && blockStart.ContentBlock.TryPickToolUse(out var toolUse))
            {
                toolName = toolUse.Name;
            }
            else if (streamEvent.TryPickContentBlockDelta(out var blockDelta) && blockDelta.Delta.TryPickInputJson(out var json))
            {
                pieces += json.PartialJson.Length > 0 ? 1 : 0;
                input.Append(json.PartialJson);
            }
            else if (streamEvent.TryPickDelta(out var messageDelta))
            {
                stopReason = messageDelta.Delta.StopReason?.Raw();
            }
        }

        Assert.Equal("get_weather", toolName);
        Assert.Equal(WeatherArguments, input.ToString());
        Assert.True(pieces >= 3, $"expected the input split into pieces, got {pieces}");
        Assert.Equal("tool_use", stopReason);
    }

    [Fact]
    public async Task AnthropicSdk_Requests_AreRecordedWithBearerKeyAndVersionHeaders()
    {
        _provider.RespondAnthropicText("ok", new AnthropicUsage(3, 1));

        await AnthropicClient().Messages.Create(AnthropicParams("record me"));

        var request = Assert.Single(_provider.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/v1/messages", request.Path);
        Assert.True(request.IsAnthropicMessages);
        // Anthropic SDK 13.x sends ClientOptions.ApiKey as "Authorization: Bearer" (documented), not x-api-key.
        Assert.Equal("Bearer sk-ant-test", request.Header("authorization"));
        Assert.False(string.IsNullOrEmpty(request.Header("anthropic-version")));
        Assert.Equal("claude-sonnet-4-5", request.Model);
        Assert.False(request.IsStreaming);
        Assert.Equal(256, request.Json!.Value.GetProperty("max_tokens").GetInt32());
    }

    // ───────────────────────────── Anthropic wire format ─────────────────────────────

    [Fact]
    public async Task AnthropicStream_EmitsEventsInTheRealOrderWithMatchingEventNames()
    {
        _provider.RespondAnthropicText("abcdefgh", new AnthropicUsage(Input: 5, Output: 9, CacheRead: 100, CacheWrite5m: 20, CacheWrite1h: 1));

        var events = await PostSseAsync("/v1/messages",
            """{"model":"claude-haiku-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"x"}]}""");

        var names = events.Select(e => e.Event).ToList();
        Assert.Equal("message_start", names[0]);
        Assert.Equal("content_block_start", names[1]);
        Assert.Equal("ping", names[2]);
        Assert.Equal(["content_block_stop", "message_delta", "message_stop"], names[^3..]);
        Assert.All(names[3..^3], n => Assert.Equal("content_block_delta", n));
        Assert.True(names.Count(n => n == "content_block_delta") >= 3);
        Assert.All(events, e => Assert.Equal(e.Event, JsonDocument.Parse(e.Data).RootElement.GetProperty("type").GetString()));

        using var start = JsonDocument.Parse(events[0].Data);
        var message = start.RootElement.GetProperty("message");
        Assert.Equal("claude-haiku-4-5", message.GetProperty("model").GetString());
        var startUsage = message.GetProperty("usage");
        Assert.Equal(5, startUsage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(100, startUsage.GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(21, startUsage.GetProperty("cache_creation_input_tokens").GetInt32());
        Assert.Equal(20, startUsage.GetProperty("cache_creation").GetProperty("ephemeral_5m_input_tokens").GetInt32());
        Assert.Equal(1, startUsage.GetProperty("cache_creation").GetProperty("ephemeral_1h_input_tokens").GetInt32());

        using var delta = JsonDocument.Parse(events[^2].Data);
        Assert.Equal("end_turn", delta.RootElement.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(9, delta.RootElement.GetProperty("usage").GetProperty("output_tokens").GetInt32());

        var text = string.Concat(events.Where(e => e.Event == "content_block_delta")
            .Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("delta"))
            .Select(d => d.GetProperty("text").GetString()));
        Assert.Equal("abcdefgh", text);
    }

    // ───────────────────────────── recording ─────────────────────────────

    [Fact]
    public async Task AnyPathAndMethod_IsRecordedWithQueryHeadersAndExactBodyBytes()
    {
        _provider.Respond(async (request, context) =>
        {
            context.Response.StatusCode = 201;
            await context.Response.WriteAsync($"seen {request.Method} {request.PathAndQuery}");
        });
        var bodyBytes = Encoding.UTF8.GetBytes("""{ "b": 2,  "a": [1, "ü"] }""");
        using var message = new HttpRequestMessage(HttpMethod.Put, new Uri(_provider.BaseUrl, "/v1/files/abc?purpose=batch&x=1"))
        {
            Content = new ByteArrayContent(bodyBytes),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        message.Headers.Add("X-Custom-Trace", "trace-123");

        using var response = await _http.SendAsync(message);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("seen PUT /v1/files/abc?purpose=batch&x=1", await response.Content.ReadAsStringAsync());
        var recorded = Assert.Single(_provider.Requests);
        Assert.Equal(0, recorded.Index);
        Assert.Equal("PUT", recorded.Method);
        Assert.Equal("/v1/files/abc", recorded.Path);
        Assert.Equal("?purpose=batch&x=1", recorded.QueryString);
        Assert.Equal("/v1/files/abc?purpose=batch&x=1", recorded.PathAndQuery);
        Assert.Equal("trace-123", recorded.Headers["x-custom-trace"]);
        Assert.Equal("trace-123", recorded.Header("X-CUSTOM-TRACE"));
        Assert.Equal(bodyBytes, recorded.Body);
        Assert.Equal("""{ "b": 2,  "a": [1, "ü"] }""", recorded.BodyText);
        Assert.Equal("ü", recorded.Json!.Value.GetProperty("a")[1].GetString());
        Assert.Equal(2, recorded.ParseJsonNode()!["b"]!.GetValue<int>());
        Assert.True(recorded.Completed);
        Assert.Equal(1, _provider.CallCount);
    }

    [Fact]
    public async Task NonJsonBody_IsRecordedWithNullJson()
    {
        using var response = await _http.PostAsync(new Uri(_provider.BaseUrl, "/upload"), new StringContent("not json"));

        var recorded = Assert.Single(_provider.Requests);
        Assert.Equal("not json", recorded.BodyText);
        Assert.Null(recorded.Json);
        Assert.Null(recorded.ParseJsonNode());
        Assert.False(recorded.IsStreaming);
    }

    [Fact]
    public async Task SixtyConcurrentRequests_AreAllAnsweredAndRecordedOnce()
    {
        _provider.RespondOpenAIText("parallel", new OpenAIUsage(1, 1));
        const int n = 60;

        var responses = await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
        {
            using var response = await _http.PostAsync(new Uri(_provider.OpenAIBaseUrl + "/chat/completions"),
                JsonContent($$"""{"model":"m","messages":[{"role":"user","content":"request {{i}}"}]}"""));
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.All(responses, r => Assert.Contains("\"parallel\"", r.Body, StringComparison.Ordinal));
        Assert.Equal(n, _provider.CallCount);
        var requests = _provider.Requests;
        Assert.Equal(Enumerable.Range(0, n), requests.Select(r => r.Index));
        Assert.Equal(
            Enumerable.Range(0, n).Select(i => $"request {i}").Order(),
            requests.Select(r => r.Json!.Value.GetProperty("messages")[0].GetProperty("content").GetString()!).Order());
    }

    [Fact]
    public async Task WaitForCallsAsync_ThrowsTimeoutException_WhenTooFewCallsArrive()
    {
        await Assert.ThrowsAsync<TimeoutException>(() => _provider.WaitForCallsAsync(1, TimeSpan.FromMilliseconds(50)));
    }

    // ───────────────────────────── scripting ─────────────────────────────

    [Fact]
    public async Task RespondError_ReturnsExactStatusAndBody()
    {
        var body = FakeResponses.AnthropicErrorBody("overloaded_error", "Overloaded");
        _provider.RespondError(529, body);

        using var response = await _http.PostAsync(new Uri(_provider.BaseUrl, "/v1/messages"), JsonContent("{}"));

        Assert.Equal(529, (int)response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task RespondNext_AnswersQueuedResponsesFirstThenTheDefault()
    {
        _provider.RespondOpenAIText("recovered", new OpenAIUsage(1, 1));
        _provider.RespondNext(FakeResponses.Error(503, FakeResponses.OpenAIErrorBody("busy")));
        _provider.RespondNext(FakeResponses.Error(500, FakeResponses.OpenAIErrorBody("boom")));
        var uri = new Uri(_provider.OpenAIBaseUrl + "/chat/completions");

        var statuses = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await _http.PostAsync(uri, JsonContent("""{"model":"m","messages":[]}"""));
            statuses.Add((int)response.StatusCode);
        }

        Assert.Equal([503, 500, 200], statuses);
    }

    [Fact]
    public async Task DefaultResponder_AnswersAnthropicFormatOnMessagesAndOpenAIFormatElsewhere()
    {
        var message = await AnthropicClient().Messages.Create(AnthropicParams("hi"));
        ChatCompletion completion = await OpenAIChat().CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.True(Assert.Single(message.Content).TryPickText(out var text));
        Assert.Equal(FakeResponses.DefaultText, text.Text);
        Assert.Equal(FakeResponses.DefaultText, completion.Content[0].Text);
    }

    [Fact]
    public async Task RespondAfter_AnswersWithTheWrappedResponder()
    {
        _provider.RespondAfter(TimeSpan.FromMilliseconds(20), FakeResponses.OpenAIText("eventually", new OpenAIUsage(2, 1)));

        ChatCompletion completion = await OpenAIChat().CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Equal("eventually", completion.Content[0].Text);
    }

    [Fact]
    public async Task RespondSlowStream_DeliversTheCompleteStream()
    {
        _provider.RespondSlowStream(TimeSpan.FromMilliseconds(10), "slow but complete");

        var received = new StringBuilder();
        await foreach (var update in OpenAIChat().CompleteChatStreamingAsync([new UserChatMessage("x")]))
        {
            received.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
        }

        Assert.Equal("slow but complete", received.ToString());
        Assert.Equal(0, _provider.CancelledCount);
    }

    [Fact]
    public async Task Gate_HoldsRequestsUntilReleased()
    {
        _provider.RespondOpenAIText("released", new OpenAIUsage(1, 1));
        _provider.CloseGate();
        var uri = new Uri(_provider.OpenAIBaseUrl + "/chat/completions");

        var pending = Enumerable.Range(0, 5)
            .Select(_ => _http.PostAsync(uri, JsonContent("""{"model":"m","messages":[]}""")))
            .ToList();
        await _provider.WaitForWaitingAtGateAsync(5, Patience);

        Assert.All(pending, task => Assert.False(task.IsCompleted));
        Assert.Equal(5, _provider.CallCount);
        Assert.Equal(5, _provider.InFlightCount);

        _provider.OpenGate();
        var responses = await Task.WhenAll(pending);

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(0, _provider.WaitingAtGateCount);
        foreach (var response in responses)
        {
            Assert.Contains("released", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            response.Dispose();
        }
    }

    [Fact]
    public async Task Gate_ClientGivingUpWhileHeld_IsRecordedAsCancelled()
    {
        _provider.CloseGate();
        using var cts = new CancellationTokenSource();
        var call = _http.PostAsync(new Uri(_provider.BaseUrl, "/v1/messages"), JsonContent("{}"), cts.Token);
        await _provider.WaitForWaitingAtGateAsync(1, Patience);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await _provider.WaitForCancelledAsync(1, Patience);
        Assert.True(_provider.Requests[0].WasCancelled);
    }

    [Fact]
    public async Task Hang_RecordsCancellation_WhenClientGivesUp()
    {
        _provider.RespondHang();
        using var cts = new CancellationTokenSource();
        var call = _http.PostAsync(new Uri(_provider.OpenAIBaseUrl + "/chat/completions"), JsonContent("{}"), cts.Token);
        await _provider.WaitForCallsAsync(1, Patience);

        Assert.False(call.IsCompleted);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await _provider.WaitForCancelledAsync(1, Patience);
        var recorded = Assert.Single(_provider.Requests);
        Assert.True(recorded.WasCancelled);
        Assert.False(recorded.Completed);
        Assert.Equal(1, _provider.CancelledCount);
        await _provider.WaitForIdleAsync(Patience);
    }

    [Fact]
    public async Task StreamThenDrop_EndsTheOpenAISdkStreamWithAnIOErrorAfterSomeContent()
    {
        _provider.RespondStreamThenDrop(eventsBeforeDrop: 3);

        var received = new StringBuilder();
        var error = await Assert.ThrowsAnyAsync<IOException>(async () =>
        {
            await foreach (var update in OpenAIChat().CompleteChatStreamingAsync([new UserChatMessage("x")]))
            {
                received.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
            }
        });

        Assert.NotNull(error);
        Assert.Equal("word1 word2 ", received.ToString());
        await _provider.WaitForIdleAsync(Patience);
        Assert.Equal(0, _provider.CancelledCount);
        Assert.True(Assert.Single(_provider.Requests).Completed);
    }

    [Fact]
    public async Task StreamThenDrop_EndsTheAnthropicSdkStreamWithAnErrorAfterSomeContent()
    {
        _provider.RespondStreamThenDrop(eventsBeforeDrop: 5);

        var received = new StringBuilder();
        var sawStop = false;
        var error = await Record.ExceptionAsync(async () =>
        {
            await foreach (var streamEvent in AnthropicClient().Messages.CreateStreaming(AnthropicParams("x")))
            {
                if (streamEvent.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var text))
                {
                    received.Append(text.Text);
                }

                sawStop |= streamEvent.TryPickStop(out _);
            }
        });

        Assert.NotNull(error);
        Assert.False(sawStop);
        Assert.Equal("word1 word2 ", received.ToString());
        Assert.Equal(0, _provider.CancelledCount);
    }

    [Fact]
    public async Task StreamThenDrop_NonStreamingRequest_GetsATruncatedBody()
    {
        _provider.RespondStreamThenDrop(eventsBeforeDrop: 0);

        var error = await Record.ExceptionAsync(async () =>
        {
            using var response = await _http.PostAsync(new Uri(_provider.OpenAIBaseUrl + "/chat/completions"), JsonContent("{}"));
            await response.Content.ReadAsStringAsync();
        });

        Assert.IsAssignableFrom<HttpRequestException>(error);
    }

    [Fact]
    public async Task Dispose_StopsTheServer()
    {
        var provider = await FakeProvider.StartAsync();
        var uri = new Uri(provider.BaseUrl, "/v1/models");
        using (var before = await _http.GetAsync(uri))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await provider.DisposeAsync();

        using var fresh = new HttpClient();
        await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetAsync(uri));
    }

    [Fact]
    public async Task Dispose_ReleasesRequestsStillHangingOrHeldAtTheGate()
    {
        var provider = await FakeProvider.StartAsync();
        provider.RespondHang();
        using var client = new HttpClient();
        var hanging = client.PostAsync(new Uri(provider.BaseUrl, "/hang"), JsonContent("{}"));
        await provider.WaitForCallsAsync(1, Patience);
        provider.CloseGate();
        var held = client.PostAsync(new Uri(provider.BaseUrl, "/held"), JsonContent("{}"));
        await provider.WaitForWaitingAtGateAsync(1, Patience);

        await provider.DisposeAsync();

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => hanging);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => held);
    }

    // ───────────────────────────── helpers ─────────────────────────────

    private ChatClient OpenAIChat() =>
        new("gpt-4o-mini", new ApiKeyCredential("sk-test-openai"),
            new OpenAIClientOptions { Endpoint = _provider.OpenAIBaseUrl, RetryPolicy = new ClientRetryPolicy(0) });

    private AnthropicClient AnthropicClient() =>
        new() { ApiKey = "sk-ant-test", BaseUrl = _provider.AnthropicBaseUrl.ToString().TrimEnd('/'), MaxRetries = 0 };

    private static MessageCreateParams AnthropicParams(string prompt) => new()
    {
        Model = "claude-sonnet-4-5",
        MaxTokens = 256,
        Messages = [new UserMessageParam(prompt)],
    };

    private static ChatTool WeatherTool() =>
        ChatTool.CreateFunctionTool(
            "get_weather",
            "Current weather",
            BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"""));

    private static StringContent JsonContent(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<List<SseEvent>> PostSseAsync(string path, string body)
    {
        using var response = await _http.PostAsync(new Uri(_provider.BaseUrl, path), JsonContent(body));
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var raw = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("\n\n", raw, StringComparison.Ordinal);

        var events = new List<SseEvent>();
        foreach (var block in raw.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? name = null;
            string? data = null;
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line["event: ".Length..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data = line["data: ".Length..];
                }
            }

            events.Add(new SseEvent(name, data ?? throw new InvalidOperationException($"event without data: {block}")));
        }

        return events;
    }
}
