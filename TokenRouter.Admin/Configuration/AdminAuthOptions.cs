using Microsoft.Extensions.Options;

namespace TokenRouter.Admin.Configuration;

/// <summary>The admin key that guards every <c>/admin/*</c> endpoint; read from <c>ADMIN_API_KEY</c>.</summary>
public sealed class AdminAuthOptions
{
    public const string ConfigurationKey = "ADMIN_API_KEY";

    public string? ApiKey { get; set; }
}

/// <summary>Refuses to start without an admin key: an unguarded control plane could mint keys for anyone.</summary>
public sealed class AdminAuthOptionsValidator : IValidateOptions<AdminAuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminAuthOptions options) =>
        string.IsNullOrWhiteSpace(options.ApiKey)
            ? ValidateOptionsResult.Fail(
                $"{AdminAuthOptions.ConfigurationKey} is not set. TokenRouter.Admin will not start without an admin key: " +
                $"set the {AdminAuthOptions.ConfigurationKey} environment variable (or configuration key) to a long random secret.")
            : ValidateOptionsResult.Success;
}
