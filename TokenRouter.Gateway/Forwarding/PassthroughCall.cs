using TokenRouter.Gateway.Accounting;
using TokenRouter.Gateway.Auth;
using TokenRouter.Gateway.Errors;
using TokenRouter.Gateway.Limits;
using TokenRouter.Gateway.Providers;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>One admitted passthrough request on its way to the provider; completed (settled, metered) exactly once.</summary>
internal sealed class PassthroughCall(string requestId, ClientIdentity identity, ProviderEndpoint provider, ProviderDeployment deployment, Uri target,
    string? model, string? clientModel, string label, bool stream, bool countsTokens,
    Admission admission, long started)
{
    public string RequestId { get; } = requestId;
    public ClientIdentity Identity { get; } = identity;
    public ProviderEndpoint Provider { get; } = provider;

    /// <summary>The key and base URL of this attempt (the provider's first available deployment in rendezvous order,
    /// then the next ones if it fails over).</summary>
    public ProviderDeployment Deployment { get; private set; } = deployment;

    /// <summary>Where the request goes: the provider's base path and the client's path below <c>/v1</c>, checked.</summary>
    public Uri Target { get; private set; } = target;

    /// <summary>The attempt's place at a deployment with a concurrency cap (null: none); given back when the call ends or
    /// moves to another deployment.</summary>
    public Routing.ConcurrencySlot? Slot { get; set; }

    /// <summary>The attempt's failure status was held back (not sent to the client) so the next deployment can answer.</summary>
    public bool HeldBack { get; set; }

    /// <summary>The next attempt goes to <paramref name="deployment"/>: what the failed attempt left is forgotten.</summary>
    public void Retarget(ProviderDeployment deployment, Uri target)
    {
        Deployment = deployment;
        Target = target;
        HeldBack = false;
        HeadersArrived = false;
        ProviderError = null;
        Status = StatusCodes.Status500InternalServerError;
    }

    public string? Model { get; } = model;
    public string? ClientModel { get; } = clientModel;
    public string Label { get; } = label;
    public bool Stream { get; set; } = stream;

    /// <summary>Anthropic's <c>count_tokens</c>: its <c>input_tokens</c> describe a prompt that was not run.</summary>
    public bool CountsTokens { get; } = countsTokens;

    public Admission Admission { get; } = admission;
    public long Started { get; } = started;
    public long SentAt { get; set; }
    public bool Sent { get; set; }
    public bool HeadersArrived { get; set; }
    public int Status { get; set; } = StatusCodes.Status500InternalServerError;
    public Usage Usage { get; set; }

    /// <summary>Reads usage from the relayed answer; null when it is not metered.</summary>
    public RelayedUsage? Relayed { get; set; }

    /// <summary>A provider error the client could not read as its own format's, held back to be re-rendered.</summary>
    public ApiError? ProviderError { get; set; }
}
