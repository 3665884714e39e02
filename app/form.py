"""Numbers from the studio's forms and from raw API calls, checked before any work starts.

The page's widgets cannot send NaN or Infinity, but a script's JSON can (Python's `json` writes
them), and Gradio passes them on. Each value is refused by its name, as the user would call it.
Number widgets carry no `precision` for the same reason: Gradio's rounding of a NaN fails before
the handler, with an error that has no message.
"""

from __future__ import annotations

import math
from typing import Any

from e2gan.errors import E2GANError


def finite_number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise E2GANError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise E2GANError(f"{what} must be a finite number, got {value}")
    return number


def whole_number(value: Any, what: str) -> int:
    number = finite_number(value, what)
    if number != int(number):
        raise E2GANError(f"{what} must be a whole number, got {value}")
    return int(number)
