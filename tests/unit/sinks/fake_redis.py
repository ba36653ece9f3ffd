"""An in-memory Redis with just the commands the quota view and the API's quota route use.

Unit tests run no Redis; this one keeps hashes and sets in dicts. Pipelines queue
commands until ``execute`` except between ``watch`` and ``multi``, where they run at
once (as redis-py's do), so ``QuotaViewStore.write_batch`` runs unchanged against it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.sets: dict[str, set[str]] = {}

    def delete(self, *keys: str) -> int:
        found = [key for key in keys if key in self.hashes or key in self.sets]
        for key in found:
            self.hashes.pop(key, None)
            self.sets.pop(key, None)
        return len(found)

    def hset(self, key: str, mapping: dict[str, str]) -> int:
        self.hashes.setdefault(key, {}).update(mapping)
        return len(mapping)

    def hgetall(self, key: str) -> dict[str, str]:
        return dict(self.hashes.get(key, {}))

    def sadd(self, key: str, *members: str) -> int:
        self.sets.setdefault(key, set()).update(members)
        return len(members)

    def srem(self, key: str, *members: str) -> int:
        kept = self.sets.get(key)
        if kept is None:
            return 0
        kept.difference_update(members)
        if not kept:
            del self.sets[key]  # Redis drops an emptied set
        return len(members)

    def smembers(self, key: str) -> set[str]:
        return set(self.sets.get(key, set()))

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, client: FakeRedis) -> None:
        self._client = client
        self._queued: list[Callable[[], Any]] = []
        self._immediate = False  # True between watch and multi

    def __enter__(self) -> FakePipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self._queued.clear()

    def watch(self, *_: str) -> None:
        self._immediate = True

    def unwatch(self) -> None:
        self._immediate = False

    def multi(self) -> None:
        self._immediate = False

    def execute(self) -> list[Any]:
        results = [command() for command in self._queued]
        self._queued.clear()
        return results

    def __getattr__(self, name: str) -> Callable[..., Any]:
        command = getattr(self._client, name)

        def run_or_queue(*args: Any, **kwargs: Any) -> Any:
            if self._immediate:
                return command(*args, **kwargs)
            self._queued.append(partial(command, *args, **kwargs))
            return self

        return run_or_queue
