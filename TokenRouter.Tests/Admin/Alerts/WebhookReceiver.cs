using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace TokenRouter.Tests.Admin.Alerts;

/// <summary>
/// A webhook receiver over real HTTP (Kestrel on 127.0.0.1, ephemeral port). It checks every request's signature the
/// way a receiver would, with its own HMAC code (not Admin's), records what came, and answers with the queued status
/// codes first, then 200.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<int> _statuses = new();
    private readonly ConcurrentQueue<Received> _received = new();

    public sealed record Received(string Body, JsonElement Json, string? Signature, string? Event, string? DeliveryId, bool SignatureValid, int AnsweredWith);

    private WebhookReceiver(WebApplication app, string secret)
    {
        _app = app;
        Secret = secret;
    }

    /// <summary>The secret the receiver verifies with: give it to Admin when creating the webhook.</summary>
    public string Secret { get; }
    public string Url { get; private set; } = null!;
    public IReadOnlyList<Received> Requests => [.. _received];
    public IReadOnlyList<Received> Accepted => _received.Where(r => r.AnsweredWith == 200).ToList();

    public static async Task<WebhookReceiver> StartAsync(string secret)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(options => options.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new WebhookReceiver(app, secret);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        receiver.Url = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>()
            .Addresses.Single().TrimEnd('/') + "/hooks/budget";
        return receiver;
    }

    /// <summary>The next requests are answered with these codes, in order; after them, 200.</summary>
    public void FailNext(params int[] statusCodes)
    {
        foreach (var code in statusCodes) _statuses.Enqueue(code);
    }

    /// <summary>Every request from now on is answered 500 (a receiver that is down for good).</summary>
    public bool AlwaysFail { get; set; }

    private async Task HandleAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync();
        var signature = context.Request.Headers["x-tokenrouter-signature"].ToString();
        var status = AlwaysFail ? 500 : _statuses.TryDequeue(out var queued) ? queued : 200;
        _received.Enqueue(new Received(body, JsonDocument.Parse(body).RootElement.Clone(), signature,
            context.Request.Headers["x-tokenrouter-event"].ToString(), context.Request.Headers["x-tokenrouter-delivery"].ToString(),
            Verify(Secret, signature, body), status));
        context.Response.StatusCode = status;
    }

    /// <summary>A receiver's check: <c>t=…,v1=…</c>, HMAC-SHA256 over <c>"{t}.{body}"</c>, compared in constant time.</summary>
    public static bool Verify(string secret, string header, string body)
    {
        var parts = header.Split(',').Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        if (!parts.TryGetValue("t", out var t) || !parts.TryGetValue("v1", out var v1)
            || !long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var unix)
            || Math.Abs(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - unix) > 300)
        {
            return false;
        }
        using var hmac = new HMACSHA256(Encoding.UTF8.GetBytes(secret));
        var expected = Convert.ToHexStringLower(hmac.ComputeHash(Encoding.UTF8.GetBytes(t + "." + body)));
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(v1));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
