using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace TokenRouter.Admin.Data.Migrations
{
    /// <inheritdoc />
    public partial class ProviderDeployments : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "provider_deployments",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    provider = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    name = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    base_url = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true),
                    protected_key = table.Column<string>(type: "character varying(4000)", maxLength: 4000, nullable: false),
                    key_hint = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    weight = table.Column<double>(type: "double precision", nullable: false),
                    cache_group = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    requests_per_minute = table.Column<int>(type: "integer", nullable: true),
                    tokens_per_minute = table.Column<int>(type: "integer", nullable: true),
                    enabled = table.Column<bool>(type: "boolean", nullable: false),
                    version = table.Column<long>(type: "bigint", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    key_rotated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_provider_deployments", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_provider_deployments_provider_name",
                table: "provider_deployments",
                columns: new[] { "provider", "name" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "provider_deployments");
        }
    }
}
