"""Figures quoted in docs/ and the recorded sources they come from.

A figure taken from a measurement carries a marker right after it (an HTML comment, invisible on the
site and on GitHub) that names its source:

    38,500 events/s<!-- bench:kinesis_events_per_s -->         the last `make bench` run (docs/data/bench.json)
    11.7 times<!-- bench:events_per_s/baseline_events_per_s --> a ratio of two of its figures
    0.7 MB<!-- bench:checkpoint_bytes_per_min_at_100_eps/1000000 -->   one of them scaled
    1,380–1,702 events/s<!-- recording:audit_events_per_s_1cpu -->   docs/data/recordings.yaml
    1,100 events/s<!-- code:components.falco.AUDIT_EVENTS_PER_REPLICA -->   a constant in the code
    1,000 events/s<!-- given -->                                an input (a setting, a limit, a quota,
                                                                a benchmark's parameter), not a measurement

The figure before a marker (one number or a range, then its unit) must be the source's value rounded
to the precision shown: `16,290` and `16,289` both stand for 16,289.5, `352,000` for anything from
351,500 to 352,500. In measurement prose (docs/benchmarks.md, and every paragraph, list item or
table row elsewhere that speaks of a benchmark, a measurement or a recording) a number with a
throughput, memory, CPU or ratio unit must carry a marker.
"""

from __future__ import annotations

import gzip
import importlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .generated import ROOT

BENCH_FILE = Path("docs/data/bench.json")
RECORDINGS_FILE = Path("docs/data/recordings.yaml")
MEASUREMENT_PAGES = ("benchmarks.md",)
"""Pages that are measurement prose throughout."""
MEASUREMENT_WORDS = re.compile(r"benchmark|\bmeasured\b|\brecorded\b|\brecording|real Falco|make bench", re.IGNORECASE)
"""Elsewhere, a paragraph, list item or table row that says one of these is measurement prose."""

KINDS = ("bench", "recording", "code", "given")
MARKER = re.compile(r"<!--\s*(?P<kind>" + "|".join(KINDS) + r")(?::(?P<key>[^\s>]+))?\s*-->")

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUM = rf"(?<![\w.,])(?:{_NUMBER})"
_RANGE_JOIN = r"\s*(?:–|-|to)\s*"
_ANY_UNIT = (
    r"events/s|events per second|calls/s|% of a core|%|MiB|MB|KiB|KB|GiB|bytes|ms|s|x|times|levels|events|/s"
)
_FIGURE_AT_END = re.compile(
    rf"(?P<lo>{_NUM})(?:{_RANGE_JOIN}(?P<hi>{_NUM}))?(?:\s*(?:{_ANY_UNIT}))?\**\s*$"
)
# The units that make a number a throughput, memory, CPU or ratio figure (scanned for in measurement prose).
_MEASURE_UNIT = r"(?:events/s|events per second|calls/s|% of a core|%|MiB|ms\b|x\b|times\b|/s\b)"
_MEASURED_FIGURE = re.compile(rf"(?P<figure>{_NUM}(?:{_RANGE_JOIN}{_NUM})?)(?P<unit>\s*{_MEASURE_UNIT})")


@dataclass(frozen=True)
class Problem:
    page: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.message}"


# --- the sources --------------------------------------------------------------------------------------------


def load_bench(root: Path = ROOT) -> dict[str, Any]:
    record = json.loads((root / BENCH_FILE).read_text(encoding="utf-8"))
    for field in ("measured_on", "commit", "result"):
        if field not in record:
            raise ValueError(f"{BENCH_FILE}: no {field!r}")
    return record


def load_recordings(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    facts = yaml.safe_load((root / RECORDINGS_FILE).read_text(encoding="utf-8"))
    if not isinstance(facts, dict):
        raise ValueError(f"{RECORDINGS_FILE}: not a mapping of facts")
    for key, fact in facts.items():
        if not isinstance(fact, dict) or "source" not in fact or not ("quote" in fact or "compute" in fact):
            raise ValueError(f"{RECORDINGS_FILE}: {key}: needs a source and a quote or a compute")
    return facts


class Sources:
    """The values markers can name."""

    def __init__(self, root: Path = ROOT) -> None:
        self.bench = load_bench(root)["result"]
        self.recordings = load_recordings(root)

    def value(self, kind: str, key: str | None) -> float | tuple[float, float] | None:
        """The figure a marker names (None: a fact without a figure); KeyError/ValueError say what is wrong."""
        if kind == "given":
            if key:
                raise ValueError("a `given` marker names no source: <!-- given -->")
            return None
        if not key:
            raise ValueError(f"a `{kind}` marker needs a key: <!-- {kind}:KEY -->")
        if kind == "bench":
            name, _, divisor = key.partition("/")
            value = self._bench(name)
            if divisor:
                by = float(divisor) if re.fullmatch(r"\d+(?:\.\d+)?(?:e\d+)?", divisor) else self._bench(divisor)
                value = value / by
            return value
        if kind == "recording":
            if key not in self.recordings:
                raise KeyError(f"{RECORDINGS_FILE} has no {key!r}")
            raw = self.recordings[key].get("value")
            if raw is None:
                return None
            if isinstance(raw, list):
                low, high = raw
                return (float(low), float(high))
            return float(raw)
        module, _, name = key.rpartition(".")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise KeyError(f"no constant {key}: {err}") from err
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} is {value!r}, not a number")
        return float(value)

    def _bench(self, name: str) -> float:
        if name not in self.bench:
            raise KeyError(f"{BENCH_FILE} has no {name!r} in its result")
        return float(self.bench[name])


# --- reading the pages --------------------------------------------------------------------------------------


def prose_lines(text: str) -> list[str]:
    """The page's lines with fenced code blocks blanked (the line numbers stay)."""
    lines = text.split("\n")
    out, fence = [], None
    for line in lines:
        stripped = line.lstrip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
            out.append("")
        elif fence is not None:
            if stripped.startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def _without_code_and_links(line: str) -> str:
    """Inline code spans and link targets blanked with spaces, so positions in the line stay where they were."""
    line = re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)
    return re.sub(r"\]\([^)]*\)", lambda m: "]" + " " * (len(m.group(0)) - 1), line)


def shown_number(text: str) -> tuple[float, float]:
    """A number as written and the half-unit of its last significant digit (trailing zeros of a whole
    number are not significant: 352,000 is 352 thousands)."""
    plain = text.replace(",", "")
    if "." in plain:
        decimals = len(plain.split(".")[1])
        return float(plain), 0.5 * 10.0**-decimals
    zeros = len(plain) - len(plain.rstrip("0")) if plain.strip("0") else 0
    return float(plain), 0.5 * 10.0**zeros


def agrees(shown: str, value: float) -> bool:
    number, half = shown_number(shown)
    return abs(number - value) <= half * (1 + 1e-9) + 1e-12


@dataclass(frozen=True)
class Marked:
    page: str
    line: int
    kind: str
    key: str | None
    before: str
    """The line's text before the marker (code spans blanked)."""


def markers(page: str, text: str) -> Iterator[Marked]:
    for number, line in enumerate(prose_lines(text), start=1):
        clean = _without_code_and_links(line)
        for found in MARKER.finditer(clean):
            yield Marked(page, number, found["kind"], found["key"], clean[: found.start()])


def check_marker(mark: Marked, sources: Sources) -> str | None:
    """What is wrong with one marked figure, or None."""
    try:
        value = sources.value(mark.kind, mark.key)
    except (KeyError, ValueError) as err:
        return f"<!-- {mark.kind}:{mark.key} -->: {err}"
    if value is None:
        return None
    # Earlier markers on the line are not part of this figure.
    before = MARKER.sub(lambda m: " " * len(m.group(0)), mark.before)
    figure = _FIGURE_AT_END.search(before)
    label = f"<!-- {mark.kind}:{mark.key} -->"
    if figure is None:
        return f"{label} does not follow a figure (a number or a range, then its unit, right before the marker)"
    low, high = figure["lo"], figure["hi"]
    if isinstance(value, tuple):
        if high is None:
            return f"{label} is the range {_fmt(value[0])}–{_fmt(value[1])}, but the page shows one number, {low}"
        if not (agrees(low, value[0]) and agrees(high, value[1])):
            return f"the page shows {low}–{high}, but {label} is {_fmt(value[0])}–{_fmt(value[1])}"
        return None
    if high is not None:
        return f"the page shows the range {low}–{high}, but {label} is one number, {_fmt(value)}"
    if not agrees(low, value):
        return f"the page shows {low}, but {label} is {_fmt(value)}"
    return None


def _fmt(value: float) -> str:
    return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def blocks(lines: list[str]) -> Iterator[list[tuple[int, str]]]:
    """Paragraphs, list items and table rows, each with its line numbers (1-based)."""
    current: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        starts_item = bool(re.match(r"([-*+]|\d+\.)\s", stripped)) or stripped.startswith("|")
        if not stripped or starts_item or stripped.startswith("#"):
            if current:
                yield current
            current = []
        if stripped:
            current.append((number, line))
            if stripped.startswith("|") or stripped.startswith("#"):
                yield current
                current = []
    if current:
        yield current


def unmarked_figures(page: str, text: str) -> Iterator[Problem]:
    """Figures with a measurement unit, in measurement prose, that carry no marker."""
    whole_page = Path(page).name in MEASUREMENT_PAGES
    for block in blocks(prose_lines(text)):
        joined = " ".join(line for _, line in block)
        if not whole_page and not MEASUREMENT_WORDS.search(MARKER.sub("", joined)):
            continue
        for number, line in block:
            clean = _without_code_and_links(line)
            clean = re.sub(r"<!--(?!\s*(?:" + "|".join(KINDS) + r")\b).*?-->", lambda m: " " * len(m.group(0)), clean)
            for found in _MEASURED_FIGURE.finditer(clean):
                rest = clean[found.end() :]
                if MARKER.match(rest.lstrip("*").lstrip()):
                    continue
                figure = (found["figure"] + found["unit"]).strip()
                yield Problem(
                    page,
                    number,
                    f"{figure!r} in measurement prose has no marker: add <!-- bench:KEY -->, <!-- recording:KEY -->, "
                    "<!-- code:MODULE.NAME --> or, for an input that is not a measurement, <!-- given -->",
                )


def check_pages(root: Path = ROOT, sources: Sources | None = None) -> list[Problem]:
    """Every marked figure against its source, and every unmarked one in measurement prose."""
    sources = sources or Sources(root)
    problems: list[Problem] = []
    for path in sorted((root / "docs").rglob("*.md")):
        page = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        for mark in markers(page, text):
            message = check_marker(mark, sources)
            if message:
                problems.append(Problem(page, mark.line, message))
        problems.extend(unmarked_figures(page, text))
    return problems


# --- the recordings themselves (../shared, when present) ----------------------------------------------------


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(_NUM, text)]


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def audit_log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def mean_line_bytes(path: Path) -> float:
    lines = audit_log_lines(path)
    return sum(len(line.encode("utf-8")) for line in lines) / len(lines)


def gzip_percent(path: Path, events_per_record: int) -> float:
    """Size of gzip-compressed CloudWatch subscription records of `events_per_record` consecutive events, as a
    percentage of the events' own bytes. The envelope is the one the CloudWatch Logs user guide documents for
    subscription filters, with values of the real lengths (12-digit account, 32-hex stream suffix, 56-digit
    event ids, millisecond timestamps); compact JSON, gzip level 9."""
    lines = audit_log_lines(path)
    raw = packed = 0
    for start in range(0, len(lines), events_per_record):
        chunk = lines[start : start + events_per_record]
        envelope = {
            "messageType": "DATA_MESSAGE",
            "owner": "111122223333",
            "logGroup": "/aws/eks/falco-eks-lab-dev/cluster",
            "logStream": "kube-apiserver-audit-0123456789abcdef0123456789abcdef",
            "subscriptionFilters": ["falco-eks-lab-dev-audit"],
            "logEvents": [
                {"id": f"{37000000000000000000000000000000000000000000000000000000 + start + i:056d}",
                 "timestamp": 1795706570000 + start + i, "message": message}
                for i, message in enumerate(chunk)
            ],
        }
        raw += sum(len(message.encode("utf-8")) for message in chunk)
        packed += len(gzip.compress(json.dumps(envelope, separators=(",", ":")).encode("utf-8"), 9, mtime=0))
    return 100.0 * packed / raw


def check_recordings(shared: Path, facts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each fact against the recording it names in `shared` (../shared)."""
    problems = []
    for key, fact in facts.items():
        path = shared / str(fact["source"])
        if not path.is_file():
            problems.append(f"{key}: {path} does not exist")
            continue
        value = fact.get("value")
        wanted = [] if value is None else [float(v) for v in (value if isinstance(value, list) else [value])]
        if "quote" in fact:
            quote = str(fact["quote"])
            if _squeeze(quote) not in _squeeze(path.read_text(encoding="utf-8")):
                problems.append(f"{key}: {path.name} does not say {quote!r}")
            missing = [v for v in wanted if v not in _numbers(quote)]
            if missing:
                problems.append(f"{key}: the quote {quote!r} does not hold {missing}")
            continue
        how = fact["compute"]
        if how == "mean_line_bytes":
            computed = mean_line_bytes(path)
        elif how == "gzip_percent":
            computed = gzip_percent(path, int(fact["events_per_record"]))
        else:
            problems.append(f"{key}: unknown compute {how!r}")
            continue
        shown = str(value)
        if len(wanted) != 1 or not agrees(shown, computed):
            problems.append(f"{key}: computed {computed:.4g} from {path.name}, the file says {value}")
    return problems
