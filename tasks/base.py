"""Shared behaviour of the built-in tasks: chat messages, split checks and content hashes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from schemas.tasks import TaskSample
from tasks.errors import UnknownSplitError
from tasks.hashing import combine, json_sha256
from tasks.prompts import SYSTEM_PROMPT, chat_messages


class BaseTask:
    """Base of the built-in tasks (they satisfy :class:`tasks.registry.Task`).

    Subclasses set ``name``, ``version``, ``reward``, ``metrics``, implement
    :meth:`_samples`, :meth:`splits` and :meth:`_data_hashes`, and keep their options in
    ``self.options`` (hashed into :meth:`content_hash`).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    reward: str
    metrics: list[str]
    default_split: str = "val"
    system_prompt: str = SYSTEM_PROMPT

    def __init__(self, **options: Any) -> None:
        self.options = options

    def splits(self) -> list[str]:
        """The splits this task instance can read."""
        raise NotImplementedError

    def _samples(self, split: str) -> Iterator[TaskSample]:
        raise NotImplementedError

    def _data_hashes(self, split: str) -> list[str]:
        """Hashes of the data files behind ``split`` (file bytes, not paths)."""
        raise NotImplementedError

    def samples(self, split: str | None = None) -> Iterator[TaskSample]:
        """Typed samples of ``split`` (default: :attr:`default_split`)."""
        return self._samples(self._check_split(split))

    def messages(self, sample: TaskSample) -> list[dict[str, Any]]:
        """System (R1 template) + user turn: one image placeholder per image, then the text."""
        return chat_messages(len(sample.images), sample.prompt, self.system_prompt)

    def content_hash(self, split: str | None = None) -> str:
        """SHA-256 over task name, version, options, system prompt and the data files' bytes."""
        split = self._check_split(split)
        header = json_sha256(
            {
                "task": self.name,
                "version": self.version,
                "options": _hashable_options(self.options),
                "system": self.system_prompt,
                "split": split,
            }
        )
        return combine([header, *self._data_hashes(split)])

    def _check_split(self, split: str | None) -> str:
        split = split or self.default_split
        known = self.splits()
        if split not in known:
            raise UnknownSplitError(self.name, split, known)
        return split


def _hashable_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options without file-system locations (the data hashes cover the files' contents)."""
    skip = {"root", "ann_file", "refs_file", "instances_file", "images", "image_root", "files"}
    return {k: v for k, v in sorted(options.items()) if k not in skip}
