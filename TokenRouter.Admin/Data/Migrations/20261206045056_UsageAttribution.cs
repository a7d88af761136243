using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace TokenRouter.Admin.Data.Migrations
{
    /// <inheritdoc />
    public partial class UsageAttribution : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "end_user",
                table: "usage_records",
                type: "character varying(256)",
                maxLength: 256,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "tags",
                table: "usage_records",
                type: "character varying(1040)",
                maxLength: 1040,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "end_user",
                table: "usage_records");

            migrationBuilder.DropColumn(
                name: "tags",
                table: "usage_records");
        }
    }
}
