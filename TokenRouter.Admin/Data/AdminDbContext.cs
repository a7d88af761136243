using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;

namespace TokenRouter.Admin.Data;

/// <summary>The Postgres schema Admin owns: keys, teams, prices, provider deployments, the usage ledger and budget alert webhooks. Names are snake_case.</summary>
public sealed class AdminDbContext(DbContextOptions<AdminDbContext> options) : DbContext(options)
{
    // Money: USD with enough scale for a fraction of a cent per request; prices: USD per 1M tokens.
    private const int MoneyPrecision = 20, MoneyScale = 10;
    private const int PricePrecision = 18, PriceScale = 6;

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<Team> Teams => Set<Team>();
    public DbSet<ModelPrice> ModelPrices => Set<ModelPrice>();
    public DbSet<UsageRecord> UsageRecords => Set<UsageRecord>();
    public DbSet<UsageDeadLetter> UsageDeadLetters => Set<UsageDeadLetter>();
    public DbSet<Webhook> Webhooks => Set<Webhook>();
    public DbSet<BudgetAlert> BudgetAlerts => Set<BudgetAlert>();
    public DbSet<WebhookDelivery> WebhookDeliveries => Set<WebhookDelivery>();
    public DbSet<ProviderDeploymentRecord> ProviderDeployments => Set<ProviderDeploymentRecord>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<ApiKey>(key =>
        {
            key.ToTable("api_keys");
            key.HasKey(k => k.Id);
            key.Property(k => k.Name).HasMaxLength(200);
            key.Property(k => k.KeyHash).HasMaxLength(64).IsFixedLength();
            key.HasIndex(k => k.KeyHash).IsUnique();
            key.Property(k => k.KeyPrefix).HasMaxLength(16);
            key.Property(k => k.QuotaUsd).HasPrecision(MoneyPrecision, MoneyScale);
            key.Property(k => k.BudgetDuration).HasMaxLength(32);
            key.Property(k => k.Models).HasMaxLength(4000);
            // Deleting a team leaves its keys without one.
            key.HasOne(k => k.Team).WithMany().HasForeignKey(k => k.TeamId).OnDelete(DeleteBehavior.SetNull);
        });

        modelBuilder.Entity<Team>(team =>
        {
            team.ToTable("teams");
            team.HasKey(t => t.Id);
            team.Property(t => t.Name).HasMaxLength(200);
            team.HasIndex(t => t.Name).IsUnique();
            team.Property(t => t.BudgetUsd).HasPrecision(MoneyPrecision, MoneyScale);
            team.Property(t => t.BudgetDuration).HasMaxLength(32);
            team.Property(t => t.Models).HasMaxLength(4000);
        });

        modelBuilder.Entity<ModelPrice>(price =>
        {
            price.ToTable("model_prices");
            price.HasKey(p => p.Model);
            price.Property(p => p.Model).HasMaxLength(200);
            price.Property(p => p.InputPerMTok).HasPrecision(PricePrecision, PriceScale);
            price.Property(p => p.CachedInputPerMTok).HasPrecision(PricePrecision, PriceScale);
            price.Property(p => p.CacheWrite5mPerMTok).HasPrecision(PricePrecision, PriceScale);
            price.Property(p => p.CacheWrite1hPerMTok).HasPrecision(PricePrecision, PriceScale);
            price.Property(p => p.OutputPerMTok).HasPrecision(PricePrecision, PriceScale);
        });

        modelBuilder.Entity<UsageRecord>(usage =>
        {
            usage.ToTable("usage_records");
            usage.HasKey(u => u.RequestId);
            usage.Property(u => u.RequestId).HasMaxLength(128);
            usage.Property(u => u.Model).HasMaxLength(200);
            usage.Property(u => u.Provider).HasMaxLength(64);
            usage.Property(u => u.Tags).HasMaxLength(UsageRecord.MaxTagsLength);
            usage.Property(u => u.EndUser).HasMaxLength(UsageRecord.MaxEndUserLength);
            usage.Property(u => u.CostUsd).HasPrecision(MoneyPrecision, MoneyScale);
            usage.Property(u => u.CacheSavingsUsd).HasPrecision(MoneyPrecision, MoneyScale);
            usage.Property(u => u.DedupSavingsUsd).HasPrecision(MoneyPrecision, MoneyScale);
            // Per-key reports over a time range; no FK: usage of configuration keys has no api_keys row.
            usage.HasIndex(u => new { u.ApiKeyId, u.CreatedAt });
            // Reports over a time range across all keys (by model, provider or day).
            usage.HasIndex(u => u.CreatedAt);
        });

        modelBuilder.Entity<UsageDeadLetter>(dead =>
        {
            dead.ToTable("usage_dead_letters");
            dead.HasKey(d => d.StreamId);
            dead.Property(d => d.StreamId).HasMaxLength(64);
            dead.Property(d => d.RequestId).HasMaxLength(128);
            dead.Property(d => d.Reason).HasMaxLength(500);
            dead.Property(d => d.Fields).HasColumnType("jsonb");
        });

        modelBuilder.Entity<Webhook>(webhook =>
        {
            webhook.ToTable("webhooks");
            webhook.HasKey(w => w.Id);
            webhook.Property(w => w.Url).HasMaxLength(2000);
            webhook.Property(w => w.Events).HasMaxLength(200);
            webhook.Property(w => w.SecretCiphertext).HasMaxLength(2000);
        });

        modelBuilder.Entity<BudgetAlert>(alert =>
        {
            alert.ToTable("budget_alerts");
            alert.HasKey(a => a.Id);
            alert.Property(a => a.Event).HasMaxLength(64);
            alert.Property(a => a.SubjectType).HasMaxLength(16);
            alert.Property(a => a.SpentUsd).HasPrecision(MoneyPrecision, MoneyScale);
            alert.Property(a => a.BudgetUsd).HasPrecision(MoneyPrecision, MoneyScale);
            // Once per subject, period and threshold: two replicas detecting the same crossing insert one row.
            alert.HasIndex(a => new { a.Event, a.SubjectType, a.SubjectId, a.PeriodStart, a.Threshold }).IsUnique();
        });

        modelBuilder.Entity<WebhookDelivery>(delivery =>
        {
            delivery.ToTable("webhook_deliveries");
            delivery.HasKey(d => d.Id);
            delivery.Property(d => d.Event).HasMaxLength(64);
            delivery.Property(d => d.SubjectType).HasMaxLength(16);
            // text, not jsonb: the bytes signed and sent are the bytes stored.
            delivery.Property(d => d.Payload).HasColumnType("text");
            delivery.Property(d => d.Status).HasMaxLength(16);
            delivery.Property(d => d.LastError).HasMaxLength(500);
            delivery.HasOne<Webhook>().WithMany().HasForeignKey(d => d.WebhookId).OnDelete(DeleteBehavior.Cascade);
            delivery.HasOne<BudgetAlert>().WithMany().HasForeignKey(d => d.AlertId).OnDelete(DeleteBehavior.Cascade);
            delivery.HasIndex(d => new { d.AlertId, d.WebhookId }).IsUnique();
            // The worker's scan for due rows.
            delivery.HasIndex(d => new { d.Status, d.NextAttemptAt });
            delivery.HasIndex(d => new { d.WebhookId, d.CreatedAt });
        });

        modelBuilder.Entity<ProviderDeploymentRecord>(deployment =>
        {
            deployment.ToTable("provider_deployments");
            deployment.HasKey(d => d.Id);
            deployment.Property(d => d.Provider).HasMaxLength(32);
            deployment.Property(d => d.Name).HasMaxLength(64);
            deployment.HasIndex(d => new { d.Provider, d.Name }).IsUnique();
            deployment.Property(d => d.BaseUrl).HasMaxLength(2000);
            deployment.Property(d => d.ProtectedKey).HasMaxLength(4000);
            deployment.Property(d => d.KeyHint).HasMaxLength(32);
            deployment.Property(d => d.CacheGroup).HasMaxLength(64);
        });

        ApplySnakeCaseNames(modelBuilder);
    }

    /// <summary>snake_case columns, keys and indexes, so hand-written SQL and dashboards need no quoting.</summary>
    private static void ApplySnakeCaseNames(ModelBuilder modelBuilder)
    {
        foreach (var entity in modelBuilder.Model.GetEntityTypes())
        {
            var table = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());
            foreach (var property in entity.GetProperties())
            {
                property.SetColumnName(ToSnakeCase(property.GetColumnName(table) ?? property.Name));
            }
            foreach (var key in entity.GetKeys())
            {
                key.SetName(ToSnakeCase(key.GetName()!));
            }
            foreach (var index in entity.GetIndexes())
            {
                index.SetDatabaseName(ToSnakeCase(index.GetDatabaseName()!));
            }
            foreach (var foreignKey in entity.GetForeignKeys())
            {
                foreignKey.SetConstraintName(ToSnakeCase(foreignKey.GetConstraintName()!));
            }
        }
    }

    internal static string ToSnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c))
            {
                // Break before an upper-case letter that follows a lower-case letter or digit ("CacheWrite5m" → "cache_write5m").
                if (i > 0 && name[i - 1] != '_' && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1])))
                {
                    sb.Append('_');
                }
                sb.Append(char.ToLowerInvariant(c));
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }
}
