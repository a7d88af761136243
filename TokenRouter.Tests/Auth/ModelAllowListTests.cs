using TokenRouter.Gateway.Auth;

namespace TokenRouter.Tests.Auth;

public sealed class ModelAllowListTests
{
    [Fact]
    public void Exact_names_and_prefix_patterns_are_allowed_case_insensitively_and_nothing_else()
    {
        var list = ModelAllowList.Parse("gpt-4o-mini, claude-*")!;

        Assert.True(list.Allows("gpt-4o-mini"));
        Assert.True(list.Allows("GPT-4o-MINI"));
        Assert.True(list.Allows("claude-sonnet-4-5"));
        Assert.False(list.Allows("gpt-4o"));
        Assert.False(list.Allows("gpt-4o-mini-2024-07-18"));
        Assert.False(list.Allows("deepseek-chat"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" , ")]
    public void An_empty_list_is_no_restriction(string? text) => Assert.Null(ModelAllowList.Parse(text));

    [Fact]
    public void A_request_must_fit_both_the_keys_and_its_teams_list()
    {
        var team = new TeamIdentity("t", "research", Models: ModelAllowList.Parse("gpt-4o*"));
        var key = new ClientIdentity("k", "alice", new string('0', 64), Team: team, Models: ModelAllowList.Parse("gpt-4o-mini,claude-*"));

        Assert.True(key.MayUse("gpt-4o-mini"));
        Assert.False(key.MayUse("claude-sonnet-4-5")); // the key allows it, its team does not
        Assert.False(key.MayUse("gpt-4o"));            // the team allows it, the key does not
        Assert.True((key with { Models = null }).MayUse("gpt-4o"));
    }
}
