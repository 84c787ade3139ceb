"""The GitHub client against FakeGitHub over real HTTP."""

from __future__ import annotations

import pytest

from slackbot.repos import GitHub, GitHubError, RepoError
from tests.fakes.github import FakeGitHub


@pytest.fixture
async def fake():
    gh = FakeGitHub(token="ghp_fake_token_0123456789abcdef")
    gh.add_repo("acme/api", default_branch="main", branches=("slackbot/fix-1",))
    gh.add_repo("acme/readonly", branches=("slackbot/fix-1",), writable=False)
    await gh.start()
    yield gh
    await gh.stop()


@pytest.fixture
async def github(fake: FakeGitHub):
    client = GitHub(fake.api_url, fake.token, timeout_s=5)
    yield client
    await client.aclose()


async def open_pr(github: GitHub, repo: str = "acme/api", head: str = "slackbot/fix-1", base: str = "main") -> str:
    return await github.create_pull_request(repo, head=head, base=base, title="Fix the login bug",
                                            body="Requested in Slack by Ada.")


async def test_pull_request_is_opened(fake: FakeGitHub, github: GitHub):
    url = await open_pr(github)
    assert url == f"{fake.api_url}/acme/api/pull/1"
    pull = fake.pulls[0]
    assert (pull["head"], pull["base"], pull["title"], pull["body"]) == (
        "slackbot/fix-1", "main", "Fix the login bug", "Requested in Slack by Ada.")
    headers = fake.requests[-1].headers
    assert headers["Authorization"] == f"Bearer {fake.token}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"


async def test_any_token_when_none_is_set():
    gh = FakeGitHub()
    gh.add_repo("acme/api")
    await gh.start()
    try:
        async with GitHub(gh.api_url, "ghp_whatever") as github:
            assert (await open_pr(github)).endswith("/acme/api/pull/1")
        async with GitHub(gh.api_url, "") as github:
            with pytest.raises(GitHubError, match="token was refused"):
                await github.default_branch("acme/api")
    finally:
        await gh.stop()


async def test_default_branch(fake: FakeGitHub, github: GitHub):
    fake.add_repo("acme/legacy", default_branch="master")
    assert await github.default_branch("acme/legacy") == "master"


async def test_duplicate_pull_request_names_the_open_one(fake: FakeGitHub, github: GitHub):
    first = await open_pr(github)
    with pytest.raises(GitHubError) as caught:
        await open_pr(github)
    assert str(caught.value) == f"A pull request for `slackbot/fix-1` is already open: {first}"
    assert caught.value.existing_url == first and caught.value.status == 422
    lookup = fake.requests[-1]
    assert lookup.method == "GET" and lookup.query["head"] == "acme:slackbot/fix-1"


@pytest.mark.parametrize(("setup", "expected"), [
    ("bad-token", "The GitHub token was refused (check GITHUB_TOKEN)."),
    ("readonly", ("The GitHub token has no permission to open pull requests in acme/readonly: "
                  "Resource not accessible by personal access token")),
    ("missing", "The GitHub repository acme/nope was not found or the token cannot see it."),
    ("unknown-base", "GitHub refused the pull request: base invalid"),
])
async def test_refusals_in_plain_words(fake: FakeGitHub, setup: str, expected: str):
    token = "ghp_wrong_token_9999999999" if setup == "bad-token" else fake.token
    repo = {"readonly": "acme/readonly", "missing": "acme/nope"}.get(setup, "acme/api")
    async with GitHub(fake.api_url, token) as github:
        with pytest.raises(GitHubError) as caught:
            await open_pr(github, repo, base="develop" if setup == "unknown-base" else "main")
    assert str(caught.value) == expected
    assert isinstance(caught.value, RepoError)
    assert token not in str(caught.value) and fake.token not in str(caught.value)


async def test_injected_faults(fake: FakeGitHub, github: GitHub):
    fake.fail_next(422, "Validation Failed", errors=[
        {"resource": "PullRequest", "code": "custom", "message": "No commits between main and slackbot/fix-1"}])
    with pytest.raises(GitHubError, match="^GitHub refused the pull request: No commits between main"):
        await open_pr(github)
    fake.fail_next(403, "API rate limit exceeded for user ID 1.")
    with pytest.raises(GitHubError, match="^GitHub's rate limit for the token is used up"):
        await github.default_branch("acme/api")
    fake.fail_next(502, "Server Error")
    with pytest.raises(GitHubError, match="^GitHub answered 502: Server Error$"):
        await github.default_branch("acme/api")
    assert fake.pulls == []


async def test_unreachable_and_malformed(fake: FakeGitHub):
    async with GitHub("http://127.0.0.1:9", fake.token, timeout_s=2) as github:
        with pytest.raises(GitHubError, match=r"^I could not reach GitHub at http://127\.0\.0\.1:9: "):
            await github.default_branch("acme/api")
    async with GitHub(fake.api_url, fake.token) as github:
        with pytest.raises(GitHubError, match="is not a GitHub repository name"):
            await github.default_branch("https://github.com/acme/api")
    assert fake.requests == []
