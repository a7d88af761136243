using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using TokenRouter.Gateway.Configuration;
using TokenRouter.Gateway.Providers;
using TokenRouter.Gateway.Routing;
using TokenRouter.Gateway.Telemetry;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>
/// Sends one upstream request until a deployment answers, before any byte goes to a client: connection failures,
/// resets, first-byte timeouts, 429, 5xx/529 and 401/403 go to the next deployment in the balancer's order (at once;
/// one cooling down after Polly's jittered exponential backoff), then round again where that is safe — after a
/// connection failure with backoff, after the provider's <c>Retry-After</c> (up to <see cref="RoutingOptions.MaxRetryAfter"/>)
/// — at most <see cref="RoutingOptions.MaxAttempts"/> attempts. Client errors
/// (400, 404, 413, 422) and every 2xx end it. Each failure feeds <see cref="DeploymentHealth"/>; each attempt is a span.
/// </summary>
public sealed class UpstreamFailover
{
    private readonly ProviderHttpClient _http;
    private readonly DeploymentHealth _health;
    private readonly DeploymentRateLimiter _limiter;
    private readonly DeploymentConcurrencyLimiter _concurrency;
    private readonly IOptionsMonitor<RoutingOptions> _routing;
    private readonly IOptionsMonitor<GatewayOptions> _gateway;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private static readonly ResiliencePropertyKey<Attempts> AttemptsKey = new("tokenrouter.attempts");

    public UpstreamFailover(ProviderHttpClient http, DeploymentHealth health, DeploymentRateLimiter limiter, IOptionsMonitor<RoutingOptions> routing,
        IOptionsMonitor<GatewayOptions> gateway, GatewayMetrics metrics, TimeProvider time, DeploymentConcurrencyLimiter concurrency)
    {
        _concurrency = concurrency;
        _http = http;
        _health = health;
        _limiter = limiter;
        _routing = routing;
        _gateway = gateway;
        _metrics = metrics;
        _time = time;
        _pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                // The budget is RoutingOptions.MaxAttempts, enforced by ShouldHandle (it may change at run time).
                MaxRetryAttempts = 100,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = routing.CurrentValue.RetryBaseDelay,
                ShouldHandle = args => ValueTask.FromResult(Plan(args.Context.Properties.GetValue(AttemptsKey, null!), args.Outcome)),
                DelayGenerator = args => ValueTask.FromResult(args.Context.Properties.GetValue(AttemptsKey, null!).NextDelay),
                OnRetry = args =>
                {
                    args.Outcome.Result?.Dispose();
                    var a = args.Context.Properties.GetValue(AttemptsKey, null!);
                    a.ReleaseSlot(); // not held through a backoff
                    _metrics.DeploymentRetried(a.Provider.Name, a.Next!.Id);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>Sends <paramref name="createRequest"/>'s request for <paramref name="call"/> to the deployments of its
    /// provider in its order (default: as configured) until one answers. The caller owns the returned response and deadline.</summary>
    /// <param name="cancel">Cancelled when nobody waits for the answer any more (not a failure of the deployment).</param>
    public async Task<UpstreamAnswer> SendAsync(UpstreamCall call, Func<ProviderDeployment, UpstreamCall, HttpRequestMessage> createRequest,
        CancellationToken cancel)
    {
        var provider = call.Target.Provider;
        // The snapshot the call's order indexes into (default: the provider's current one).
        var set = (call.Deployments ?? provider.Current).Deployments;
        var attempts = new Attempts(this, provider, set, call.Order ?? Identity(set.Count), createRequest, call, cancel);
        // The first attempt runs outside the pipeline: nearly every request ends with it, and Polly (this pipeline and the
        // dedup rejoin) took 2.9 µs of CPU a request in the load profile at bc5eca1 for answers nobody retried. Anything
        // that may be retried goes on through the pipeline as its first outcome.
        Outcome<HttpResponseMessage> first;
        try
        {
            first = await attempts.SendOneAsync();
        }
        catch
        {
            attempts.ReleaseSlot();
            throw;
        }
        if (first.Exception is null && FailoverRules.KindOf((int)first.Result!.StatusCode) is null)
        {
            Plan(attempts, first);
            // The slot goes with the response: the caller gives it back when the exchange ends (a stream: at its end).
            return new UpstreamAnswer(first.Result, attempts.Request, attempts.Deadline, attempts.Current!, attempts.LastFailure, attempts.Count,
                attempts.TakeSlot());
        }
        attempts.FirstOutcome = first;
        var context = ResilienceContextPool.Shared.Get(cancel);
        context.Properties.Set(AttemptsKey, attempts);
        try
        {
            var outcome = await _pipeline.ExecuteOutcomeAsync(static (ctx, a) => a.TakeFirstOutcome() is { } o ? ValueTask.FromResult(o) : a.SendOneAsync(),
                context, attempts);
            if (outcome.Exception is { } ex)
            {
                attempts.TakeFirstOutcome()?.Result?.Dispose(); // the pipeline ended (cancelled) before it looked at it
                attempts.ReleaseSlot();
                attempts.Request?.Dispose();
                attempts.Deadline?.Dispose();
                if (ex is OperationCanceledException && cancel.IsCancellationRequested) throw ex;
                return new UpstreamAnswer(null, null, null, attempts.Current!, attempts.LastFailure, attempts.Count, Busy: attempts.Busy);
            }
            // The slot goes with the response: the caller gives it back when the exchange ends (a stream: at its end).
            return new UpstreamAnswer(outcome.Result, attempts.Request, attempts.Deadline, attempts.Current!, attempts.LastFailure, attempts.Count,
                attempts.TakeSlot());
        }
        catch
        {
            attempts.ReleaseSlot();
            throw;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private static readonly int[][] Identities = [.. Enumerable.Range(0, 9).Select(n => Enumerable.Range(0, n).ToArray())];

    private static int[] Identity(int n) => n < Identities.Length ? Identities[n] : [.. Enumerable.Range(0, n)];

    /// <summary>Whether the outcome is retried, and where and when: reports the failure, then picks the next deployment.</summary>
    private bool Plan(Attempts a, Outcome<HttpResponseMessage> outcome)
    {
        var d = a.Current!;
        FailureKind? kind;
        TimeSpan? retryAfter = null;
        if (outcome.Exception is DeploymentSaturatedException)
        {
            // Not sent, not the deployment's fault: no health change, straight on to the next in order.
            kind = FailureKind.Saturated;
        }
        else if (outcome.Exception is { } ex)
        {
            if (ex is OperationCanceledException && a.Cancel.IsCancellationRequested) return false;
            kind = ex switch
            {
                UpstreamTimeoutException => FailureKind.Timeout,
                HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError } => FailureKind.Connect,
                HttpRequestException { InnerException: SocketException { SocketErrorCode: SocketError.ConnectionRefused } } => FailureKind.Connect,
                OperationCanceledException => FailureKind.Connect, // the handler's connect timeout
                HttpRequestException or IOException => FailureKind.Reset,
                _ => null,
            };
        }
        else
        {
            var status = (int)outcome.Result!.StatusCode;
            kind = FailoverRules.KindOf(status);
            if (kind is null)
            {
                if (status < 400) _health.Succeeded(d.Id);
                _metrics.DeploymentAttempt(a.Provider.Name, d.Id, status < 400 ? DeploymentOutcome.Success : DeploymentOutcome.ClientError);
                return false;
            }
            if (UpstreamHeaders.RetryAfterSeconds(outcome.Result, _time) is { } seconds) retryAfter = TimeSpan.FromSeconds(seconds);
        }
        if (kind is not { } k) return false;

        a.Failed(k, retryAfter);
        Activity.Current?.SetTag(GatewayActivity.Failure, FailoverRules.Label(k));
        _metrics.DeploymentFailed(a.Provider.Name, d.Id, FailoverRules.Label(k));
        if (k != FailureKind.Saturated)
        {
            _metrics.DeploymentAttempt(a.Provider.Name, d.Id, DeploymentOutcome.Failure);
            _health.Failed(a.Provider.Name, d.Id, k, retryAfter);
        }

        var o = _routing.CurrentValue;
        if (a.Count >= o.MaxAttempts) return false;
        var n = a.Order.Length;
        // 1. a deployment not tried yet that is available: at once (another key, another account, another cache).
        for (var i = 1; i < n; i++)
        {
            var p = (a.Position + i) % n;
            if (!a.Tried[p] && _health.IsAvailable(a.Deployments[a.Order[p]].Id)) return a.PlanNext(p, TimeSpan.Zero);
        }
        // 2. one not tried yet that is cooling down: a probe, after a backoff.
        for (var i = 1; i < n; i++)
        {
            var p = (a.Position + i) % n;
            if (!a.Tried[p]) return a.PlanNext(p, null);
        }
        // 3. all tried: round again from the best, only where asking again is safe or invited — the request never
        // reached it (connect, reset: after a backoff), or it said when to come back (Retry-After up to MaxRetryAfter).
        // A provider's own 5xx/429 without Retry-After, a timeout or a revoked key is the client's answer.
        for (var p = 0; p < n; p++)
        {
            var wait = a.RetryAfter[p];
            var again = a.LastKinds[p] switch
            {
                FailureKind.Connect or FailureKind.Reset => true,
                FailureKind.RateLimited or FailureKind.ServerError => wait is { } w && w <= o.MaxRetryAfter,
                _ => false,
            };
            if (again) return a.PlanNext(p, wait);
        }
        return false;
    }

    /// <summary>One request's attempts: which deployment is being tried and what happened to the others.</summary>
    private sealed class Attempts(UpstreamFailover owner, ProviderEndpoint provider, IReadOnlyList<ProviderDeployment> deployments, int[] order,
        Func<ProviderDeployment, UpstreamCall, HttpRequestMessage> createRequest, UpstreamCall call, CancellationToken cancel)
    {
        public ProviderEndpoint Provider { get; } = provider;
        public IReadOnlyList<ProviderDeployment> Deployments { get; } = deployments;
        public int[] Order { get; } = order;
        public CancellationToken Cancel { get; } = cancel;
        // Per deployment in Order, kept from the first failure on: nearly every request ends with its first attempt.
        public bool[] Tried => _tried!;
        public TimeSpan?[] RetryAfter => _retryAfter!;
        public FailureKind?[] LastKinds => _lastKinds!;
        private bool[]? _tried;
        private TimeSpan?[]? _retryAfter;
        private FailureKind?[]? _lastKinds;
        private bool _started;
        public int Position { get; private set; }
        public int Count { get; private set; }
        public ProviderDeployment? Current { get; private set; }
        public ProviderDeployment? Next { get; private set; }
        private int _nextPosition;
        public TimeSpan? NextDelay { get; private set; }
        public FailureKind? LastFailure { get; private set; }

        /// <summary>The current attempt failed: remembered for choosing where (and whether) to try next.</summary>
        public void Failed(FailureKind kind, TimeSpan? retryAfter)
        {
            _tried ??= new bool[Order.Length];
            _retryAfter ??= new TimeSpan?[Order.Length];
            _lastKinds ??= new FailureKind?[Order.Length];
            LastFailure = kind;
            _tried[Position] = true;
            _retryAfter[Position] = retryAfter;
            _lastKinds[Position] = kind;
        }
        public HttpRequestMessage? Request { get; set; }
        public Outcome<HttpResponseMessage>? FirstOutcome { private get; set; }

        public Outcome<HttpResponseMessage>? TakeFirstOutcome()
        {
            var first = FirstOutcome;
            FirstOutcome = null;
            return first;
        }
        public UpstreamDeadline? Deadline { get; private set; }
        /// <summary>The current attempt's place at a deployment with a concurrency cap (null: none taken).</summary>
        private ConcurrencySlot? _slot;
        /// <summary>A deployment was skipped for its concurrency cap (a slot may free any moment: Retry-After 1).</summary>
        public bool Busy { get; private set; }

        public void ReleaseSlot() => Interlocked.Exchange(ref _slot, null)?.Dispose();

        public ConcurrencySlot? TakeSlot() => Interlocked.Exchange(ref _slot, null);

        public bool PlanNext(int position, TimeSpan? delay)
        {
            _nextPosition = position;
            Next = Deployments[Order[position]];
            NextDelay = delay;
            return true;
        }

        public async ValueTask<Outcome<HttpResponseMessage>> SendOneAsync()
        {
            Position = _started ? _nextPosition : 0;
            _started = true;
            var d = Current = Deployments[Order[Position]];
            ReleaseSlot();
            // A deployment at its concurrency cap or its own RPM/TPM is skipped without an attempt (and without counting
            // towards MaxAttempts). The cap first: it takes nothing from the RPM window when it refuses.
            if (!owner._concurrency.TryAcquire(Provider.Name, d.Id, d.MaxConcurrency, out var slot))
            {
                Busy = true;
                return Outcome.FromException<HttpResponseMessage>(new DeploymentSaturatedException());
            }
            if (!owner._limiter.TryAcquire(d.Id, d.Rpm, d.Tpm))
            {
                slot?.Dispose();
                return Outcome.FromException<HttpResponseMessage>(new DeploymentSaturatedException());
            }
            _slot = slot;
            Count++;
            using var span = GatewayActivity.Source.StartActivity("Upstream.Attempt", ActivityKind.Client);
            span?.SetTag(GatewayActivity.Provider, Provider.Name);
            span?.SetTag(GatewayActivity.Deployment, d.Id);
            span?.SetTag(GatewayActivity.Attempt, Count);

            Request?.Dispose();
            // Disposing a deadline gives it back to its pool: it must not be disposed again.
            Deadline?.Dispose();
            Deadline = null;
            Request = createRequest(d, call);
            // The first-byte deadline of this attempt; once headers arrive, the caller re-arms it for the body's silences.
            Deadline = DeadlinePool.Shared.Start(owner._gateway.CurrentValue.ProviderResponseTimeout, Cancel);
            var sent = owner._time.GetTimestamp();
            try
            {
                var response = await owner._http.Invoker.SendAsync(Request, Deadline.Token);
                owner._metrics.UpstreamHeaders(owner._time.GetElapsedTime(sent), Provider.Name);
                span?.SetTag("http.response.status_code", (int)response.StatusCode);
                return Outcome.FromResult(response);
            }
            catch (OperationCanceledException) when (Deadline.IsCancellationRequested && !Cancel.IsCancellationRequested)
            {
                span?.SetStatus(ActivityStatusCode.Error, "timeout");
                return Outcome.FromException<HttpResponseMessage>(new UpstreamTimeoutException());
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
            {
                span?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
                return Outcome.FromException<HttpResponseMessage>(ex);
            }
        }
    }
}

/// <summary>No response headers within the first-byte timeout (<c>UPSTREAM_FIRST_BYTE_TIMEOUT</c>).</summary>
public sealed class UpstreamTimeoutException : Exception;

/// <summary>The deployment is at its own RPM/TPM or concurrency cap: the request was not sent to it.</summary>
public sealed class DeploymentSaturatedException : Exception;

/// <summary>How an upstream request ended: a response (any status), its request and the deadline that now watches its
/// body (the caller disposes all three, and <see cref="Slot"/> once the exchange has ended), or no response at all
/// (<see cref="Failure"/> says why; <see cref="Busy"/>: a deployment was skipped for its concurrency cap).</summary>
public readonly record struct UpstreamAnswer(HttpResponseMessage? Response, HttpRequestMessage? Request, UpstreamDeadline? Deadline,
    ProviderDeployment Deployment, FailureKind? Failure, int Attempts, ConcurrencySlot? Slot = null, bool Busy = false);
