"""How a free-text concept is phrased for each kind of teacher.

A diffusion teacher takes any text, in one of two phrasings (`Concept.phrasing`): img2img teachers
and the GAN's text conditioning want a description of the result ("an old man"), InstructPix2Pix
an instruction ("turn him into an old man"), the form of every caption it was trained on. A user
types one of the two; the other is made from it here by a few plain rules, and either can be
replaced (`e2gan pairs --instruction / --description`, the studio's two boxes).
"""

from __future__ import annotations

import re

# Imperatives that begin an edit instruction; "<any verb> it ..." ("solarize it") is one too.
_VERBS = ("make", "turn", "add", "remove", "give", "put", "change", "convert", "transform",
          "replace", "let", "apply", "swap")
_SUBJECT = r"(?:it|them|him|her|this|the (?:photo|image|picture|scene))"
# Instructions whose description is plain to read off them, tried in order; `rest` and `where`
# are the typed words, kept as typed.
_DESCRIBED = [
    (rf"(?:make|let) {_SUBJECT} (?:look like |look |become |be )?(?P<rest>.+)", "{rest}"),
    (rf"(?:turn|change|convert|transform) {_SUBJECT} (?:into|to) (?P<rest>.+)", "{rest}"),
    (rf"give {_SUBJECT} (?P<rest>.+)", "a photo with {rest}"),
    (r"add (?P<rest>.+?) (?:to|in|on|into) (?P<where>.+)", "{where} with {rest}"),
    (r"add (?P<rest>.+)", "a photo with {rest}"),
    (r"remove (?P<rest>.+?) from (?P<where>.+)", "{where} without {rest}"),
    (r"remove (?P<rest>.+)", "a photo without {rest}"),
]


def reads_as_instruction(text: str) -> bool:
    """Whether `text` is already an edit instruction ("make it winter", "add snow", "swirl it")."""
    words = text.lower().split()
    return bool(words) and (words[0] in _VERBS
                            or bool(re.match(rf"[a-z]+ {_SUBJECT}\b", " ".join(words))))


def free_text_phrasings(text: str) -> dict[str, str]:
    """{"description", "instruction"} for a concept typed as `text` (spacing tidied, a final full
    stop dropped). A description gets the instruction "turn it into {text}" (after an article:
    "a snowy forest") or "make it look like {text}" ("old person", "Van Gogh style"). An
    instruction is kept, and its description read off it where that is simple ("turn him into
    an old man" -> "an old man", "add fireworks to the sky" -> "the sky with fireworks"), else
    it is the text itself."""
    text = " ".join(text.split()).rstrip(".!")
    if not text:
        return {"description": "", "instruction": ""}
    if not reads_as_instruction(text):
        article = text.split()[0].lower() in ("a", "an", "the")
        return {"description": text,
                "instruction": f"turn it into {text}" if article else f"make it look like {text}"}
    for pattern, template in _DESCRIBED:
        match = re.fullmatch(pattern, text, flags=re.IGNORECASE)
        if match:
            return {"description": template.format(**match.groupdict()), "instruction": text}
    return {"description": text, "instruction": text}
