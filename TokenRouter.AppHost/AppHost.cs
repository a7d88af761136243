var builder = DistributedApplication.CreateBuilder(args);

builder.AddProject<Projects.TokenRouter_Gateway>("gateway").WithExternalHttpEndpoints();

builder.Build().Run();
