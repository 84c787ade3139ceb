"""Repository secrets as stored: names and ciphertext only. Sealing and opening is slackbot/secret_box.py's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from .models import RepoSecret, utcnow
from .store import Store


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown of a secret: never its value."""

    name: str
    updated_by: str
    updated_at: datetime


class RepoSecrets:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def put(self, repo_id: int, name: str, ciphertext: str, *, by: str) -> bool:
        """Adds the secret, or replaces the one of that name; True when it replaced one."""
        def fn(s: Session) -> bool:
            row = s.exec(select(RepoSecret).where(RepoSecret.repo_id == repo_id, RepoSecret.name == name)).first()
            replaced = row is not None
            row = row or RepoSecret(repo_id=repo_id, name=name, ciphertext="")
            row.ciphertext, row.updated_by, row.updated_at = ciphertext, by, utcnow()
            s.add(row)
            s.commit()
            return replaced
        try:
            return await self.store.run(fn)
        except IntegrityError:  # another process added that name meanwhile: replace it
            return await self.store.run(fn)

    async def remove(self, repo_id: int, names: Collection[str]) -> list[str]:
        """Removes the named secrets; returns those that were there."""
        def fn(s: Session) -> list[str]:
            rows = s.exec(select(RepoSecret).where(RepoSecret.repo_id == repo_id,
                                                   col(RepoSecret.name).in_(list(names)))).all()
            for row in rows:
                s.delete(row)
            s.commit()
            return sorted(r.name for r in rows)
        return await self.store.run(fn) if names else []

    async def listed(self, repo_id: int) -> list[SecretInfo]:
        def fn(s: Session) -> list[SecretInfo]:
            rows = s.exec(select(RepoSecret).where(RepoSecret.repo_id == repo_id).order_by(col(RepoSecret.name)))
            return [SecretInfo(r.name, r.updated_by, r.updated_at) for r in rows]
        return await self.store.run(fn)

    async def sealed(self, repo_id: int) -> dict[str, str]:
        """name -> ciphertext, for the setup command's environment."""
        def fn(s: Session) -> dict[str, str]:
            rows = s.exec(select(RepoSecret).where(RepoSecret.repo_id == repo_id).order_by(col(RepoSecret.name)))
            return {r.name: r.ciphertext for r in rows}
        return await self.store.run(fn)
