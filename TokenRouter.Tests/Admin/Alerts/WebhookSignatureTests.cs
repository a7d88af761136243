using System.Security.Cryptography;
using System.Text;
using TokenRouter.Admin.Alerts;

namespace TokenRouter.Tests.Admin.Alerts;

/// <summary>The <c>x-tokenrouter-signature</c> header, as documented in the README, with no server.</summary>
public sealed class WebhookSignatureTests
{
    private const string Secret = "whsec_test-secret";
    private const string Body = """{"event":"budget.threshold","threshold_percent":80}""";

    [Fact]
    public void The_signature_is_the_hex_HMAC_SHA256_of_timestamp_dot_body_keyed_with_the_secret()
    {
        // Re-derived here, independently of the implementation: what a receiver computes.
        var expected = Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret),
            Encoding.UTF8.GetBytes("1767225600." + Body)));

        Assert.Equal($"t=1767225600,v1={expected}", WebhookSignature.Create(Secret, 1767225600, Body));
    }

    [Fact]
    public void A_signature_verifies_only_with_its_secret_its_body_and_a_recent_timestamp()
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(1767225600);
        var header = WebhookSignature.Create(Secret, now.ToUnixTimeSeconds(), Body);
        var tolerance = TimeSpan.FromMinutes(5);

        Assert.True(WebhookSignature.Verify(Secret, header, Body, now.AddSeconds(30), tolerance));
        Assert.False(WebhookSignature.Verify("whsec_another-secret", header, Body, now, tolerance));
        Assert.False(WebhookSignature.Verify(Secret, header, Body.Replace("80", "50", StringComparison.Ordinal), now, tolerance));
        Assert.False(WebhookSignature.Verify(Secret, header, Body, now.AddMinutes(6), tolerance)); // a replay
        Assert.False(WebhookSignature.Verify(Secret, header.Replace("t=1767225600", "t=1767225601", StringComparison.Ordinal), Body, now, tolerance));
        Assert.False(WebhookSignature.Verify(Secret, "v1=00", Body, now, tolerance));
    }

    [Fact]
    public void Generated_secrets_are_long_random_and_url_safe()
    {
        var a = WebhookSecretProtector.Generate();
        var b = WebhookSecretProtector.Generate();

        Assert.NotEqual(a, b);
        Assert.StartsWith("whsec_", a, StringComparison.Ordinal);
        Assert.True(a.Length >= 6 + 43, a);
        Assert.All(a, c => Assert.True(char.IsAsciiLetterOrDigit(c) || c is '_' or '-', a));
    }
}
