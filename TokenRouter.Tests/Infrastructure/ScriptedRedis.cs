using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace TokenRouter.Tests.Infrastructure;

/// <summary>
/// A stand-in Redis for retry tests: <see cref="IConnectionMultiplexer"/> and <see cref="IDatabase"/> proxies whose
/// script calls are answered by <see cref="OnScript"/> (everything else the code under test does not use throws).
/// </summary>
public sealed class ScriptedRedis
{
    private int _scripts;
    private int _connectedChecks;

    public ScriptedRedis()
    {
        Multiplexer = DispatchProxy.Create<IConnectionMultiplexer, MultiplexerProxy>();
        ((MultiplexerProxy)(object)Multiplexer).Owner = this;
        Database = DispatchProxy.Create<IDatabase, DatabaseProxy>();
        ((DatabaseProxy)(object)Database).Owner = this;
        Subscriber = DispatchProxy.Create<ISubscriber, SubscriberProxy>();
    }

    public IConnectionMultiplexer Multiplexer { get; }
    public IDatabase Database { get; }

    /// <summary>Accepts subscriptions and never delivers a message.</summary>
    public ISubscriber Subscriber { get; }

    /// <summary>Answers the n-th (1-based) script call; throw to fail it.</summary>
    public Func<int, RedisValue[], Task<RedisResult>> OnScript { get; set; } = (_, _) => Task.FromResult(RedisResult.Create((RedisValue)1));

    /// <summary>Answers the n-th (1-based) read of <see cref="IConnectionMultiplexer.IsConnected"/>.</summary>
    public Func<int, bool> OnIsConnected { get; set; } = _ => true;

    public int Scripts => Volatile.Read(ref _scripts);
    public int ConnectedChecks => Volatile.Read(ref _connectedChecks);
    public ConcurrentQueue<RedisValue[]> ScriptArguments { get; } = new();

    public static RedisConnectionException ConnectionFailure() => new(ConnectionFailureType.SocketFailure, CommandFlags.None, "test: Redis is away", null, CommandStatus.Unknown);
    public static RedisTimeoutException Timeout() => new(CommandFlags.None, "test: Redis timed out", CommandStatus.Sent);

    /// <summary>A script answer that fails the first <paramref name="failures"/> calls with <paramref name="error"/>.</summary>
    public static Func<int, RedisValue[], Task<RedisResult>> FailFirst(int failures, Func<Exception> error) =>
        (n, _) => n <= failures ? Task.FromException<RedisResult>(error()) : Task.FromResult(RedisResult.Create((RedisValue)1));

    public class MultiplexerProxy : DispatchProxy
    {
        internal ScriptedRedis Owner = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod!.Name switch
        {
            nameof(IConnectionMultiplexer.GetDatabase) => Owner.Database,
            nameof(IConnectionMultiplexer.GetSubscriber) => Owner.Subscriber,
            "get_" + nameof(IConnectionMultiplexer.IsConnected) => Owner.OnIsConnected(Interlocked.Increment(ref Owner._connectedChecks)),
            nameof(IDisposable.Dispose) => null,
            nameof(IAsyncDisposable.DisposeAsync) => ValueTask.CompletedTask,
            _ => throw new NotSupportedException($"ScriptedRedis: {targetMethod.Name}"),
        };
    }

    public class SubscriberProxy : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => targetMethod!.Name switch
        {
            nameof(ISubscriber.SubscribeAsync) or nameof(ISubscriber.UnsubscribeAsync) => Task.CompletedTask,
            _ => throw new NotSupportedException($"ScriptedRedis: subscriber {targetMethod.Name}"),
        };
    }

    public class DatabaseProxy : DispatchProxy
    {
        internal ScriptedRedis Owner = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod!.Name == nameof(IDatabase.ScriptEvaluateAsync) && args is [string or byte[], _, RedisValue[] values, ..])
            {
                Owner.ScriptArguments.Enqueue(values);
                return Owner.OnScript(Interlocked.Increment(ref Owner._scripts), values);
            }
            throw new NotSupportedException($"ScriptedRedis: {targetMethod.Name}");
        }
    }
}

/// <summary>Keeps every formatted log message (thread-safe), for asserting what a retry logged.</summary>
public sealed class ListLogger<T> : ILogger<T>
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    public IReadOnlyList<(LogLevel Level, string Message)> Entries => [.. _entries];

    public int Count(string contains) => _entries.Count(e => e.Message.Contains(contains, StringComparison.Ordinal));

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _entries.Enqueue((logLevel, formatter(state, exception)));
}

/// <summary>Waits (briefly, in real time) for background work that needs no clock to catch up.</summary>
public static class BackgroundWork
{
    public static async Task TrueAsync(Func<bool> condition, string because)
    {
        await Eventually.TrueAsync(condition, because, TimeSpan.FromSeconds(10));
        await Task.Delay(20); // let the retry strategy register its delay on the fake clock
    }
}
