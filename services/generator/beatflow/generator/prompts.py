"""Fold the structured hints of a request into MusicGen's text description.

MusicGen is conditioned on free text only, so bpm, mood, genre, key and
instruments become a short comma-separated phrase appended to the prompt, in
the style of the captions the model was trained on ("lofi hip hop, relaxed,
piano and drums, 85 bpm, in A minor").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hints:
    bpm: float | None = None
    mood: str = ""
    genre: str = ""
    key: str = ""
    instruments: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {
            "bpm": self.bpm,
            "mood": self.mood,
            "genre": self.genre,
            "key": self.key,
            "instruments": list(self.instruments),
        }


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(" ,.")


def _instruments(names: tuple[str, ...]) -> str:
    items = [_clean(n) for n in names if _clean(n)]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe(prompt: str, hints: Hints) -> str:
    """The text the model is conditioned on: the prompt followed by the hints that are set."""
    parts = [_clean(prompt)]
    if hints.genre:
        parts.append(_clean(hints.genre))
    if hints.mood:
        parts.append(_clean(hints.mood))
    if hints.instruments:
        parts.append(_instruments(hints.instruments))
    if hints.bpm:
        parts.append(f"{hints.bpm:g} bpm")
    if hints.key:
        key = _clean(hints.key)
        parts.append(key if key.lower().startswith("in ") else f"in {key}")
    return ", ".join(p for p in parts if p)
