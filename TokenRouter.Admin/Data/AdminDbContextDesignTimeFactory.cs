using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace TokenRouter.Admin.Data;

/// <summary>
/// Lets <c>dotnet ef migrations add</c> build the model without running the app or reaching a database
/// (the connection string is never opened for scaffolding).
/// </summary>
public sealed class AdminDbContextDesignTimeFactory : IDesignTimeDbContextFactory<AdminDbContext>
{
    public AdminDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<AdminDbContext>()
            .UseNpgsql("Host=localhost;Database=tokenrouter_design")
            .Options;
        return new AdminDbContext(options);
    }
}
