var builder = WebApplication.CreateBuilder(args);

// The console's assets from a build output in every environment (ASP.NET Core does it only in Development): the
// framework's blazor.web.js lives in a package until publish copies it to wwwroot. A published app has no runtime
// manifest, so this does nothing there.
builder.WebHost.UseStaticWebAssets();

builder.AddServiceDefaults();
builder.AddAdminServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapAdminApi();
app.MapAdminConsole();

app.Run();
