namespace TokenRouter.Admin.Console;

internal static partial class Log
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Console sign-in with a wrong admin key from {RemoteAddress}")]
    public static partial void SignInFailed(ILogger logger, string remoteAddress);

    [LoggerMessage(Level = LogLevel.Information, Message = "Console: {Action} API key {KeyId}")]
    public static partial void KeyChanged(ILogger logger, string action, Guid keyId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Console: {Action} the price override of {Model}")]
    public static partial void PriceChanged(ILogger logger, string action, string model);
}
