"""Teachers: image editors whose edits the tiny GAN learns to imitate.

Importing this package registers the built-in and diffusion teachers in `TEACHERS` (diffusers
itself is imported only when a diffusion teacher loads its model).
"""

from e2gan.teachers.base import (
    PHRASINGS,
    TEACHERS,
    Concept,
    GenerationStopped,
    Teacher,
    create_teacher,
    describe_teachers,
)
from e2gan.teachers.phrasing import free_text_phrasings
from e2gan.teachers.builtin import BUILTIN_CONCEPTS, BuiltinTeacher, resolve_builtin_concept
from e2gan.teachers.diffusion import DiffusionTeacher  # registers the diffusers-backed teachers

__all__ = [
    "BUILTIN_CONCEPTS",
    "TEACHERS",
    "BuiltinTeacher",
    "Concept",
    "DiffusionTeacher",
    "GenerationStopped",
    "PHRASINGS",
    "Teacher",
    "create_teacher",
    "describe_teachers",
    "free_text_phrasings",
    "resolve_builtin_concept",
]
