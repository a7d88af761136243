using Microsoft.Extensions.Configuration;
using TokenRouter.Admin.Alerts;

namespace TokenRouter.Tests.Admin.Alerts;

/// <summary>Webhook delivery options: the WEBHOOK_* aliases and the start-up validation.</summary>
public sealed class WebhookOptionsTests
{
    private static WebhookOptions Bind(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var options = new WebhookOptions();
        configuration.GetSection(WebhookOptions.SectionName).Bind(options);
        WebhookOptions.ApplyAliases(options, configuration);
        return options;
    }

    [Fact]
    public void The_aliases_set_attempts_and_Go_style_durations_unless_the_section_sets_them()
    {
        var options = Bind(new()
        {
            ["WEBHOOK_MAX_ATTEMPTS"] = "4",
            ["WEBHOOK_TIMEOUT"] = "3s",
            ["WEBHOOK_RETRY_DELAY"] = "500ms",
            ["WEBHOOK_MAX_RETRY_DELAY"] = "2m",
            ["Admin:Webhooks:Timeout"] = "00:00:07",
        });

        Assert.Equal(4, options.MaxAttempts);
        Assert.Equal(TimeSpan.FromSeconds(7), options.Timeout);
        Assert.Equal(TimeSpan.FromMilliseconds(500), options.RetryDelay);
        Assert.Equal(TimeSpan.FromMinutes(2), options.MaxRetryDelay);
        Assert.True(new WebhookOptionsValidator().Validate(null, options).Succeeded);
    }

    [Fact]
    public void Invalid_settings_fail_at_start_up_naming_the_variable()
    {
        var options = Bind(new() { ["WEBHOOK_MAX_ATTEMPTS"] = "0", ["WEBHOOK_TIMEOUT"] = "soon" });

        var result = new WebhookOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains("WEBHOOK_MAX_ATTEMPTS", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("WEBHOOK_TIMEOUT", result.FailureMessage, StringComparison.Ordinal);
    }
}
