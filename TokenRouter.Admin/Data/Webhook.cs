namespace TokenRouter.Admin.Data;

/// <summary>
/// A receiver of budget alerts. Its signing secret is kept only encrypted (ASP.NET Core Data Protection), is shown once
/// at creation and never read back out through the API.
/// </summary>
public sealed class Webhook
{
    public Guid Id { get; set; }
    public required string Url { get; set; }

    /// <summary>Events it wants, comma-separated (<c>budget.threshold</c>, <c>key.disabled_by_budget</c>); null = all.</summary>
    public string? Events { get; set; }

    /// <summary>The signing secret, protected by <c>WebhookSecretProtector</c>.</summary>
    public required string SecretCiphertext { get; set; }
    public bool Enabled { get; set; } = true;
    public DateTimeOffset CreatedAt { get; set; }
}
