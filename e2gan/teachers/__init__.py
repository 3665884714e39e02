"""Teachers: image editors whose edits the tiny GAN learns to imitate.

Importing this package registers the built-in teachers in `TEACHERS`.
"""

from e2gan.teachers.base import TEACHERS, Concept, Teacher, create_teacher
from e2gan.teachers.builtin import BUILTIN_CONCEPTS, BuiltinTeacher, resolve_builtin_concept

__all__ = [
    "BUILTIN_CONCEPTS",
    "TEACHERS",
    "BuiltinTeacher",
    "Concept",
    "Teacher",
    "create_teacher",
    "resolve_builtin_concept",
]
