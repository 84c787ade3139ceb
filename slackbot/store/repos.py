"""Repositories, their channel links and defaults."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from .models import ChannelRepo, Repository
from .store import Store


class RepoConflict(Exception):
    pass


@dataclass(frozen=True)
class LinkedRepo:
    repo: Repository
    is_default: bool


class RepoStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def link(self, channel: str, *, name: str, url: str, branch: str, github: str, user: str) -> Repository:
        """Links a repository to the channel; the same name and URL may be linked in several channels."""
        def fn(s: Session) -> Repository:
            repo = s.exec(select(Repository).where(Repository.name == name)).first()
            if repo is None:
                repo = Repository(name=name, url=url, branch=branch, github=github, created_by=user)
            elif repo.url != url:
                raise RepoConflict(f"The name `{name}` is already used for {repo.url}; pick another name.")
            else:
                repo.branch = branch or repo.branch
                repo.github = github or repo.github
            s.add(repo)
            s.flush()
            assert repo.id is not None  # flushed: the row has its key
            link = s.exec(select(ChannelRepo).where(ChannelRepo.channel == channel,
                                                    ChannelRepo.repo_id == repo.id)).first()
            if link is None:
                has_any = s.exec(select(ChannelRepo).where(ChannelRepo.channel == channel)).first()
                s.add(ChannelRepo(channel=channel, repo_id=repo.id, is_default=has_any is None))
            s.commit()
            s.refresh(repo)
            return repo
        return await self.store.run(fn)

    async def channel_repos(self, channel: str) -> list[LinkedRepo]:
        def fn(s: Session) -> list[LinkedRepo]:
            rows = s.exec(select(ChannelRepo, Repository).where(ChannelRepo.channel == channel)
                          .where(ChannelRepo.repo_id == Repository.id).order_by(Repository.name)).all()
            return [LinkedRepo(repo, link.is_default) for link, repo in rows]
        return await self.store.run(fn)

    async def by_name(self, channel: str, name: str) -> Repository | None:
        """This channel's repositories first, then the workspace's."""
        for linked in await self.channel_repos(channel):
            if linked.repo.name == name:
                return linked.repo
        return await self.store.run(lambda s: s.exec(select(Repository).where(Repository.name == name)).first())

    async def get(self, repo_id: int) -> Repository | None:
        return await self.store.run(lambda s: s.get(Repository, repo_id))

    async def set_default(self, channel: str, repo_id: int) -> None:
        def fn(s: Session) -> None:
            for link in s.exec(select(ChannelRepo).where(ChannelRepo.channel == channel)).all():
                link.is_default = link.repo_id == repo_id
                s.add(link)
            s.commit()
        await self.store.run(fn)

    async def unlink(self, channel: str, repo_id: int) -> None:
        def fn(s: Session) -> None:
            link = s.exec(select(ChannelRepo).where(ChannelRepo.channel == channel,
                                                    ChannelRepo.repo_id == repo_id)).first()
            if link:
                s.delete(link)
            s.commit()
        await self.store.run(fn)

    async def configure(self, repo_id: int, **fields: object) -> Repository:
        repo = await self.store.update(Repository, repo_id, **fields)
        assert repo is not None, f"repository {repo_id}"  # repositories are never deleted
        return repo
