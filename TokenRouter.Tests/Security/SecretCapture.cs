using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;

namespace TokenRouter.Tests.Security;

/// <summary>Records every log entry at every level — message, exception, structured state and scopes — as text.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<string> _entries = new();
    private IExternalScopeProvider? _scopes;

    public IReadOnlyCollection<string> Entries => _entries;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes?.Push(state);

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var sb = new StringBuilder().Append(logLevel).Append(' ').Append(category).Append(": ").Append(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
                foreach (var (k, v) in pairs) sb.Append(" | ").Append(k).Append('=').Append(v);
            if (exception is not null) sb.Append(" | ").Append(exception);
            owner._scopes?.ForEachScope((scope, b) => b.Append(" | scope ").Append(scope), sb);
            owner._entries.Enqueue(sb.ToString());
        }
    }
}

/// <summary>Records every activity of every source in the process (names, tags, events, links, baggage, status).</summary>
public sealed class ActivityCapture : IDisposable
{
    private readonly ConcurrentQueue<string> _activities = new();
    private readonly ActivityListener _listener;

    public ActivityCapture()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => _activities.Enqueue(Describe(a)),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyCollection<string> Activities => _activities;

    private static string Describe(Activity a)
    {
        var sb = new StringBuilder().Append(a.Source.Name).Append(' ').Append(a.OperationName).Append(' ').Append(a.DisplayName)
            .Append(' ').Append(a.Status).Append(' ').Append(a.StatusDescription);
        foreach (var (k, v) in a.TagObjects) sb.Append(" | ").Append(k).Append('=').Append(v);
        foreach (var e in a.Events)
        {
            sb.Append(" | event ").Append(e.Name);
            foreach (var (k, v) in e.Tags) sb.Append(' ').Append(k).Append('=').Append(v);
        }
        foreach (var (k, v) in a.Baggage) sb.Append(" | baggage ").Append(k).Append('=').Append(v);
        foreach (var link in a.Links)
            if (link.Tags is { } tags) foreach (var (k, v) in tags) sb.Append(" | link ").Append(k).Append('=').Append(v);
        return sb.ToString();
    }

    public void Dispose() => _listener.Dispose();
}

internal static class SecretGrep
{
    /// <summary>Fails naming the first place any secret (or its last 12 characters, a masked form's tail) shows up.</summary>
    public static void AssertNoneIn(IEnumerable<string> texts, string what, IReadOnlyDictionary<string, string> secrets)
    {
        foreach (var text in texts)
        {
            foreach (var (name, secret) in secrets)
            {
                if (text.Contains(secret, StringComparison.Ordinal) || text.Contains(secret[^12..], StringComparison.Ordinal))
                    Assert.Fail($"The {name} appears in {what}: {Clip(text, secret)}");
            }
        }
    }

    private static string Clip(string text, string secret)
    {
        var at = Math.Max(0, text.IndexOf(secret[^12..], StringComparison.Ordinal) - 200);
        return text.Substring(at, Math.Min(500, text.Length - at));
    }
}
