"""Finding the final answer in a model's response, and the text clean-up applied to answers
before they are compared. Pure string work: bounded, linear time, no sympy.

The paper's models answer in `\\boxed{}` (Qwen2.5-Math, Qwen3-Base and DeepSeek-R1-Distill,
the last after `</think>`). When there is no box, two other forms they produce are accepted:
Minerva's "The final answer is X" and DAPO-Math's "Answer: X" line.
"""

from __future__ import annotations

import re
from typing import NamedTuple

BOX_COMMANDS = ("\\boxed", "\\fbox")

# Bounds that keep extraction linear on adversarial text (e.g. "\\boxed{" repeated 10^5
# times): only the last few boxes are tried, and a box must close within this many chars.
MAX_BOXES_TRIED = 8
MAX_BOX_CHARS = 10_000

# The fallback patterns only look at the end of a response: a final answer is stated last,
# and a bounded window keeps the regex work independent of the response length.
FALLBACK_WINDOW_CHARS = 2000

_FINAL_ANSWER_IS = re.compile(
    r"final answer is[:\s]*(.+?)(?:\.?\s*I hope it is correct|\s*$)", re.IGNORECASE | re.MULTILINE
)
_ANSWER_LINE = re.compile(r"^[ \t*#]*answer[ \t*]*[:：][ \t]*(.+?)[ \t]*$", re.IGNORECASE | re.MULTILINE)

_BARE_TOKEN = re.compile(r"[^\s$]+")

# Digit grouping. math-verify reads a grouping comma only in its plain form: "32,349" is a
# number (a comma before exactly three digits), "32, 349" a list of two. TeX writes a comma
# without its punctuation space as `,\!` or `{,}` (MATH: "32,\! 349"), and blanks beside
# either are not typeset, so both become a plain comma and math-verify's rule decides.
# A positive TeX space between digits and a group of three is the SI thousands separator
# ("1\,000", blanks beside it again not typeset); anywhere else it is a visible space
# ("100,\,200" stays a list). The look-behinds keep a matrix row break "\\ " intact.
# A match starts where a blank run starts (the `(?<!\s)`): tried from inside the run, the
# leading `\s*` would rescan it from every position, quadratic in the run's length.
_GROUPING_COMMA = re.compile(r"(?<!\s)\s*(?:\{\s*,\s*\}|,\s*\\!)\s*")
_GROUPING_SPACE = re.compile(r"(?<=\d)\s*\\[,;: ]\s*(?=\d{3}(?!\d))")
_TEX_SPACE = re.compile(r"(?<!\\)\\[,;: ]")
_NEGATIVE_SPACE = re.compile(r"(?<!\\)\\!")

# MATH grades "28\%" and "28" alike, so a percent is dropped, whether a sign or a word
# ("28 percent", "28\text{ percent}"; a \text-like wrapper holding only the word goes too).
_PERCENT_WORD = r"per\s?cent"
_PERCENT = re.compile(
    rf"\\?%|\\(?:text|textrm|textnormal|mbox|mathrm)\s*\{{\s*{_PERCENT_WORD}\s*\}}"
    rf"|(?<![A-Za-z]){_PERCENT_WORD}(?![A-Za-z])",
    re.IGNORECASE,
)


class ExtractedAnswer(NamedTuple):
    """The final answer of a response and how it was found ("boxed", "final_answer_is", "answer_line")."""

    text: str
    method: str


def last_boxed_content(text: str) -> str | None:
    """Content of the last complete, non-empty `\\boxed{...}` / `\\fbox{...}` (also `\\boxed 5`).

    A box cut off by the response length limit is skipped, so an earlier complete one counts.
    """
    end = len(text)
    for _ in range(MAX_BOXES_TRIED):
        start = max(text.rfind(command, 0, end) for command in BOX_COMMANDS)
        if start < 0:
            return None
        content = _box_argument(text, start)
        if content:
            return content
        end = start
    return None


def _box_argument(text: str, start: int) -> str | None:
    """Argument of the box command at `start`: balanced braces, or a bare token (`\\boxed 5`)."""
    command = next(c for c in BOX_COMMANDS if text.startswith(c, start))
    pos = start + len(command)
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos >= len(text):
        return None
    if text[pos] != "{":
        if pos == start + len(command) or text[pos] in "\\$":
            return None  # "\boxedfoo" is another macro; "\boxed \frac..." is not a bare token
        token = _BARE_TOKEN.match(text, pos)
        return token.group(0) if token else None
    depth = 0
    for index in range(pos, min(len(text), pos + MAX_BOX_CHARS)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[pos + 1 : index].strip()
    return None  # unbalanced (a truncated response) or absurdly long


def extract_final_answer(response: str) -> ExtractedAnswer | None:
    """The response's final answer: the last box, else a "final answer is" / "Answer:" statement."""
    boxed = last_boxed_content(response)
    if boxed:
        return ExtractedAnswer(boxed, "boxed")
    tail = response[-FALLBACK_WINDOW_CHARS:]
    for method, pattern in (("final_answer_is", _FINAL_ANSWER_IS), ("answer_line", _ANSWER_LINE)):
        matches = pattern.findall(tail)
        if matches:
            answer = strip_math_delimiters(matches[-1])
            if answer:
                return ExtractedAnswer(answer, method)
    return None


def strip_math_delimiters(answer: str) -> str:
    """Remove surrounding `$...$`, `\\(...\\)`, `\\[...\\]` and a trailing full stop."""
    answer = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(left) and answer.endswith(right) and len(answer) >= len(left) + len(right):
            answer = answer[len(left) : len(answer) - len(right)].strip()
            break
    return answer.rstrip(".").strip()


def normalize_answer(answer: str) -> str:
    """Clean-up applied to both the ground truth and the prediction before comparing them.

    Only rewrites what math-verify does not handle itself: dollar signs (delimiters and
    currency), percents and TeX spacing (see the patterns above).
    """
    answer = answer.replace("\\$", "").replace("$", "")
    answer = _PERCENT.sub("", answer)
    answer = _GROUPING_COMMA.sub(",", answer)
    answer = _GROUPING_SPACE.sub("", answer)
    answer = _TEX_SPACE.sub(" ", answer)
    answer = _NEGATIVE_SPACE.sub("", answer)
    return answer.strip().rstrip(".").strip()
