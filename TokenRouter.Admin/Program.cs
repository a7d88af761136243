var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddAdminServices();

var app = builder.Build();

app.MapDefaultEndpoints();
app.MapAdminApi();

app.Run();
