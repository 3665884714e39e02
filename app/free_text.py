"""Free-text concepts on the Concept step: both phrasings of what was typed, and the way out when
nothing here can make it.

A diffusion teacher takes any text, phrased as a description (img2img teachers, and the GAN's
text) or an instruction (InstructPix2Pix): the tab shows both, prefilled from the concept and
editable (`follow_phrasings`). The built-in teacher knows only its named filters, whose phrasings
are fixed. Text that no teacher here can make, a diffusion teacher without its weights, or one on
a CPU gets its choices in one message (`choices`): fetch a diffusion teacher, use a GPU, or bring
your own pairs. Plain functions over `e2gan`, no Gradio.
"""

from __future__ import annotations

import shlex
from typing import Any

from e2gan.data.generate import phrase_concept
from e2gan.errors import E2GANError
from e2gan.hub.download import cache_dir
from e2gan.teachers import PHRASINGS, TEACHERS, free_text_phrasings, resolve_builtin_concept
from e2gan.teachers.builtin import nearest_builtin_concepts

PHRASING_LABELS = {"description": "Description (for img2img teachers and the GAN's text)",
                   "instruction": "Instruction (for InstructPix2Pix)"}
# The teacher offered for any text when the built-in one cannot make it, if it is listed.
PREFERRED_TEACHER = "instruct-pix2pix"


def takes_free_text(teacher: str) -> bool:
    """Whether teacher `teacher` takes any text (the diffusion editors), not only named concepts
    (the built-in filters). Loads nothing."""
    return teacher in TEACHERS and TEACHERS.get(teacher)().concepts() is None


def default_phrasings(text: str) -> dict[str, str]:
    """Both phrasings of what was typed: a built-in concept's own (by name, prompt or
    instruction), else made from the text (`e2gan.teachers.free_text_phrasings`)."""
    text = " ".join((text or "").split())
    try:
        return phrase_concept(text)[1] if text else {kind: "" for kind in PHRASINGS}
    except E2GANError:  # no letters or digits to name it by: the text still reads as typed
        return free_text_phrasings(text)


def follow_phrasings(text: str, shown: dict[str, str], prefilled: dict[str, str]
                     ) -> tuple[dict[str, str], dict[str, str]]:
    """The phrasing boxes after the concept text changed to `text`: (what they show, what was
    prefilled). A box still showing what was prefilled before (or nothing) follows the text; a
    box the user edited keeps the edit."""
    fresh = default_phrasings(text)
    kept = {}
    for kind in PHRASINGS:
        value = (shown or {}).get(kind) or ""
        edited = value.strip() and value != (prefilled or {}).get(kind)
        kept[kind] = value if edited else fresh[kind]
    return kept, fresh


def edited_phrasings(shown: dict[str, str], prefilled: dict[str, str]) -> dict[str, str]:
    """The phrasings the user changed: each box that holds something other than what it was
    prefilled with. The others are made again from the concept text when it is set, so a box
    not yet refilled for new text (or an API call that leaves the boxes at their defaults)
    never carries an old concept's phrasing into a new one."""
    return {kind: value for kind, value in (shown or {}).items()
            if kind in PHRASINGS and value and value.strip()
            and value != (prefilled or {}).get(kind)}


def phrasing_notes(teacher: str) -> dict[str, str] | None:
    """The note under each phrasing box: which one `teacher` is given. None for a teacher of
    named concepts, whose phrasings are fixed (the boxes are hidden)."""
    if not takes_free_text(teacher):
        return None
    given = TEACHERS.get(teacher).phrasing
    return {"description": (f"✔ {teacher} is given this; it is also the GAN's text"
                            if given == "description" else
                            f"the GAN's text ({teacher} is given the instruction)"),
            "instruction": (f"✔ {teacher} is given this" if given == "instruction" else
                            f"not used by {teacher}; kept with the pairs")}


def _fetch_way(row: dict[str, Any], chosen: bool) -> str:
    """How to get the diffusion teacher of `row` (a row of `app.concepts.teacher_table`) running."""
    name = row["name"]
    model = TEACHERS.get(name).default_model
    if row["available"]:
        return (f"**A diffusion teacher**: pick `{name}` as the teacher; it takes any text, "
                "phrased both ways in the two boxes that then appear")
    if row["missing"] == "packages":
        return (f"**Fetch a diffusion teacher**: {row['reason']}; then fetch `{model}` "
                f"(`hf download {model}`) and restart the studio")
    if row["downloadable"]:
        press = ("press **Download weights** under the teacher" if chosen else
                 f"pick `{name} · weights to download` as the teacher, then press "
                 "**Download weights** under it")
        return (f"**Fetch a diffusion teacher**: {press} (`{model}`, once, into the Hugging Face "
                "cache)")
    return (f"**Fetch a diffusion teacher**: on a machine with the network run "
            f"`hf download {model}` into the Hugging Face cache this studio reads "
            f"({cache_dir()}), then restart the studio")


def _gpu_way(text: str, teacher: str, settings: Any) -> str:
    if settings.zero_gpu:
        return ("**A GPU**: this Space borrows one for each run (ZeroGPU), where a diffusion "
                "edit takes seconds")
    if settings.device != "cpu":
        return "**A GPU**: this machine has one, where a diffusion edit takes seconds"
    if settings.on_space:
        return ("**A GPU**: give this Space GPU hardware (its Settings → Space hardware: "
                "ZeroGPU, or a T4 or better); on its CPU a diffusion edit takes minutes")
    return ("**A GPU**: run the studio on a machine with one, or make the pairs there "
            f"(`e2gan pairs --teacher {teacher} --concept {shlex.quote(text or 'your concept')} "
            "--out DIR`), zip DIR and bring it here as your own pairs")


PAIRS_WAY = ("**Your own pairs**: open **or bring your own pairs** below and import one zip of "
             "before/after photos made by any editor; the concept typed above names the adapter")


def choices(text: str, teacher: str, rows: list[dict[str, Any]],
            settings: Any) -> tuple[str, list[str]] | None:
    """(headline, ways) when `teacher` cannot make `text` here, or can only slowly; None when it
    can. `rows` is `app.concepts.teacher_table()`, `settings` the studio's `SETTINGS`."""
    text = " ".join((text or "").split())
    table = {row["name"]: row for row in rows}
    row = table.get(teacher)
    if row is None:
        return None
    if not takes_free_text(teacher):
        if not text:
            return None
        try:
            resolve_builtin_concept(text)
            return None
        except E2GANError:
            pass
        near = nearest_builtin_concepts(text)
        near = f" (did you mean {', '.join(f'`{name}`' for name in near)}?)" if near else ""
        # The teacher to offer: one that runs here, else one whose weights can be fetched.
        free = [other for other in rows if takes_free_text(other["name"])]
        free.sort(key=lambda other: (not other["available"], not other["downloadable"],
                                     other["name"] != PREFERRED_TEACHER))
        if not free:
            return None
        headline = (f"unknown built-in concept “{text}”{near}: the built-in teacher knows only "
                    "its named filters. Any text takes a diffusion teacher; three ways to make it")
        return headline, [_fetch_way(free[0], chosen=False),
                          _gpu_way(text, free[0]["name"], settings), PAIRS_WAY]
    if not row["available"]:
        why = (f"its weights (`{TEACHERS.get(teacher).default_model}`) are not on this machine"
               if row["missing"] == "weights" else row["reason"])
        headline = f"`{teacher}` cannot run here yet: {why}. Three ways to make it"
        return headline, [_fetch_way(row, chosen=True), _gpu_way(text, teacher, settings), PAIRS_WAY]
    if settings.device == "cpu" and not settings.zero_gpu:
        headline = (f"`{teacher}` runs here, on the CPU, where each diffusion edit takes seconds "
                    "to minutes: fine for a preview, slow for hundreds of pairs. Ways to go faster")
        return headline, [_gpu_way(text, teacher, settings), PAIRS_WAY]
    return None


def as_markdown(choice: tuple[str, list[str]] | None) -> str:
    if choice is None:
        return ""
    headline, ways = choice
    return f"**{headline}:**\n\n" + "\n".join(f"{number}. {way}"
                                                for number, way in enumerate(ways, 1))


def as_line(choice: tuple[str, list[str]]) -> str:
    """The same in one line of plain text, for an error message."""
    headline, ways = choice
    plain = [way.replace("**", "") for way in ways]
    return f"{headline}: " + "; ".join(f"({number}) {way}" for number, way in enumerate(plain, 1))
