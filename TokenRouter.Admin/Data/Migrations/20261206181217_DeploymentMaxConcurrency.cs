using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace TokenRouter.Admin.Data.Migrations
{
    /// <inheritdoc />
    public partial class DeploymentMaxConcurrency : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "max_concurrency",
                table: "provider_deployments",
                type: "integer",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "max_concurrency",
                table: "provider_deployments");
        }
    }
}
