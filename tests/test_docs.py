"""The documentation: the site builds in strict mode (every link and anchor resolves), the README is a door to
every page, the generated tables match their sources, and every quoted figure matches its recorded source.

The site is built with the pinned MkDocs into a temporary folder; nothing here needs the network.
"""

from __future__ import annotations

import contextlib
import html.parser
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_mocks import resolve
from support.audit_events import SHARED_CORPUS_DIR, shared_corpus_file

from docs_tools import detection, figures
from docs_tools.generated import BLOCKS, DocsError, flags_table, replace_block, settings_table, stale_blocks

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SHARED = SHARED_CORPUS_DIR.parent
MKDOCS_ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent,
        env=MKDOCS_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for the module as `make docs` builds it."""
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def nav_pages() -> list[str]:
    def walk(items: Any) -> list[str]:
        pages: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            pages += walk(value) if isinstance(value, list) else [value]
        return pages

    return walk(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])


class _Ids(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def anchors(page: Path) -> set[str]:
    parser = _Ids()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.ids


# --- the strict build ---------------------------------------------------------------------------------------


def test_the_site_builds_in_strict_mode_with_every_page_in_the_navigation(site: Path) -> None:
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(nav_pages()) == on_disk
    for page in on_disk:
        assert (site / page.replace(".md", ".html")).is_file(), page


def test_the_build_validates_links_anchors_and_omitted_pages_as_warnings() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    for check in ("omitted_files", "unrecognized_links", "anchors", "not_found", "absolute_links"):
        assert config["validation"][check] == "warn", check


BROKEN_LINKS = {
    "[a](other.md#no-such-section)": "does not contain an anchor '#no-such-section'",
    "[b](missing.md)": "'missing.md', but the target is not found",
    "[c](#nowhere)": "'#nowhere', but there is no such anchor on this page",
}


def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config.update(docs_dir="pages", nav=[{"Home": "index.md"}, {"Other": "other.md"}])
    (tmp_path / "pages").mkdir()
    links = " ".join(BROKEN_LINKS)
    (tmp_path / "pages" / "index.md").write_text(f"# Home\n\nSee {links}, and [fine](other.md#a-section).\n", "utf-8")
    (tmp_path / "pages" / "other.md").write_text("# Other\n\n## A section\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    for warning in BROKEN_LINKS.values():
        assert warning in output
    assert output.count("WARNING") == len(BROKEN_LINKS)


def test_every_list_starts_after_a_blank_line_as_the_site_needs() -> None:
    """Python-Markdown (the site) reads a list item right under a paragraph line, or under a paragraph nested
    in the previous item, as more of that paragraph."""
    glued = []
    for path in sorted(DOCS.rglob("*.md")):
        lines = figures.prose_lines(path.read_text(encoding="utf-8"))
        for number, (before, line) in enumerate(zip(lines, lines[1:], strict=False), start=2):
            # Allowed before an item: a blank line, another item, or an item's continuation (indented under 4).
            continued = re.match(r"\s*([-*+]|\d+\.) | {1,3}\S", before)
            if re.match(r"([-*+]|\d+\.) ", line) and before.strip() and not continued:
                glued.append(f"{path.relative_to(ROOT)}:{number}: {line[:60]}")
    assert glued == []


# --- paths of this repository named in the documents ------------------------------------------------------------

_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)*/?")
UPSTREAM_PATHS = {
    "provider/pkg/await/deployment.go": "pulumi-kubernetes' file (operations.md), not this repository's provider/",
}
"""Paths that start like a folder of this repository but name another project's file, with where they are quoted."""


def project_folders() -> set[str]:
    """The repository's own top-level folders: those git tracks files in (not site/, sdks/ or .venv/, which a build
    leaves); without git, every folder but dot-folders and what .gitignore leaves out."""
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=False)
    if tracked.returncode == 0 and tracked.stdout:
        return {line.split("/", 1)[0] for line in tracked.stdout.splitlines() if "/" in line and line[0] != "."}
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()}
    return {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in ignored}


def repository_paths(text: str, folders: set[str]) -> list[str]:
    """Paths under a folder of the repository quoted as code (`components/falco/__init__.py`, `tests/support/`), and
    the targets of relative links (resolved against the document's folder by the caller, marked with ./)."""
    prose = _FENCED.sub("", text)
    quoted = [
        token for token in _INLINE_CODE.findall(prose)
        if "/" in token and _PATH.fullmatch(token) and token.split("/", 1)[0] in folders
    ]  # fmt: skip
    linked = [
        "./" + target.partition("#")[0] for target in _MD_LINK.findall(prose)
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]  # fmt: skip
    return quoted + linked


def test_every_repository_path_the_documents_name_exists() -> None:
    """A moved or renamed file must take its mentions along: every path under a folder of the repository quoted
    in docs/*.md or README.md, and every relative link, names something that exists."""
    folders = project_folders()
    assert {"components", "forwarder", "tests", "docs"} <= folders
    missing = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        named = repository_paths(page.read_text(encoding="utf-8"), folders)
        for path in named:
            if path in UPSTREAM_PATHS:
                continue
            where = page.parent / path.removeprefix("./") if path.startswith("./") else ROOT / path
            if not where.exists() or (path.endswith("/") and not where.is_dir()):
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert missing == []


def test_the_path_finder_sees_quoted_paths_and_links_but_not_commands_or_other_projects_names() -> None:
    text = (
        "See `components/falco.py` and `forwarder/checkpoint/` ([the guide](forwarder.md#flags), "
        "[data](data/bench.json), [site](https://example.com/a/b)); run `make up`, read `falco/falco-falcosidekick`, "
        "`releases/<version>/urns.json` and `docker build -f forwarder/Dockerfile .`.\n"
        "```\n`tests/in_a_fence.py`\n```\n"
    )
    assert repository_paths(text, {"components", "forwarder", "releases", "tests"}) == [
        "components/falco.py", "forwarder/checkpoint/", "./forwarder.md", "./data/bench.json",
    ]  # fmt: skip


# --- the README: the door -----------------------------------------------------------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def readme_doc_links() -> list[str]:
    return [target for target in _LINK.findall(README) if not re.match(r"[a-z]+:", target)]


def test_every_link_of_the_readme_reaches_a_page_and_anchor_of_the_site(site: Path) -> None:
    links = readme_doc_links()
    assert links
    for target in links:
        path, _, anchor = target.partition("#")
        assert (ROOT / path).is_file(), f"README links {target}: no such file"
        if path.startswith("docs/") and path.endswith(".md"):
            built = site / path.removeprefix("docs/").replace(".md", ".html")
            assert built.is_file(), f"README links {target}: the site has no {built.name}"
            if anchor:
                assert anchor in anchors(built), f"README links {target}: the page has no #{anchor}"


def test_the_readme_links_every_page_of_the_site() -> None:
    linked = {t.partition("#")[0].removeprefix("docs/") for t in readme_doc_links() if t.startswith("docs/")}
    assert set(nav_pages()) <= linked


def test_the_readme_gives_the_two_commands_and_how_to_read_the_site() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    assert {"make up", "make test", "make docs", "make docs-serve"} <= set(commands)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("docs", "docs-serve"):
        assert re.search(rf"^{target}:.*## ", makefile, re.MULTILINE), f"make {target} is missing or has no help"
    assert "site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


# --- generated tables ---------------------------------------------------------------------------------------


def test_the_generated_tables_are_what_their_sources_give() -> None:
    assert stale_blocks(write=False) == [], "run 'make docs' (python -m docs_tools write)"


def test_the_settings_table_lists_every_key_of_pulumi_yaml_with_its_default() -> None:
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([A-Za-z0-9:]+)` \| [^|]+ \| ([^|]+) \|", page, re.MULTILINE))
    assert list(rows) == list(config)
    assert rows["nodeCount"].strip() == "`2`"
    assert rows["apiPublicAccessCidrs"].strip() == '`["0.0.0.0/0"]`'
    assert rows["clusterName"].strip() == '`""` (empty)'


def test_a_new_setting_of_any_shape_gets_its_row() -> None:
    table = settings_table(
        {
            "config": {
                "plain": {"type": "string", "default": "a|b"},
                "listed": {"type": "array", "items": {"type": "integer"}, "description": "Ports <p>, *not* _x_."},
                "token": {"type": "string", "secret": True, "description": "A | pipe\nand a line break."},
                "shortForm": 5,
            }
        }
    )
    rows = table.splitlines()[2:]
    assert rows[0] == "| `plain` | string | `a\\|b` | (no description in Pulumi.yaml) |"
    assert rows[1] == "| `listed` | array of integer | required | Ports &lt;p&gt;, \\*not\\* \\_x\\_. |"
    assert rows[2] == "| `token` | string, secret | required | A \\| pipe and a line break. |"
    assert rows[3] == "| `shortForm` | int | `5` | (no description in Pulumi.yaml) |"
    with pytest.raises(DocsError, match="config"):
        settings_table({"name": "x"})


def test_the_flags_table_has_every_option_of_forwarder_run_with_its_variable() -> None:
    from forwarder.config import build_parser

    table = flags_table(build_parser())
    run = next(
        action.choices["run"] for action in build_parser()._actions if getattr(action, "choices", None)
    )
    options = [a for a in run._actions if a.option_strings and a.dest != "help"]
    assert len(table.splitlines()) == 2 + len(options)
    for action in options:
        env = "FORWARDER_" + action.dest.upper()
        assert f"| `{action.option_strings[0]} {action.metavar}`<br>`{env}` |" in table
    assert "| `--poll-interval SECONDS`<br>`FORWARDER_POLL_INTERVAL` | `2` | pause between polls" in table


def test_a_page_without_its_markers_is_refused_with_what_is_missing() -> None:
    block = BLOCKS[0]
    with pytest.raises(DocsError, match="generated:settings begin"):
        replace_block("# Settings\n\nno table here\n", block, "| a |\n")
    once = f"{block.begin()}\nold\n{block.end()}\n"
    assert replace_block(once, block, "new\n") == f"{block.begin()}\n\nnew\n\n{block.end()}\n"


# --- figures ------------------------------------------------------------------------------------------------


def test_every_quoted_figure_agrees_with_its_recorded_source() -> None:
    problems = figures.check_pages()
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize(
    ("shown", "value", "agree"),
    [
        ("16,290", 16289.5, True),
        ("16,289", 16289.5, True),
        ("16,288", 16289.5, False),
        ("352,000", 352248.1, True),
        ("352,000", 352600.0, False),
        ("0.26", 0.258, True),
        ("0.3", 0.4, False),
        ("11.7", 11974.6 / 1024.6, True),
        ("0.7", 717475 / 1e6, True),
        ("0", 0.0, True),
    ],
)
def test_a_figure_agrees_with_its_value_rounded_to_the_precision_shown(shown: str, value: float, agree: bool) -> None:
    assert figures.agrees(shown, value) is agree


# The checker's cases read these benchmark figures (the 2026-12-01 run's), not the live docs/data/bench.json, so a
# new benchmark run changes no case.
_CASE_BENCH = {"kinesis_events_per_s": 38500.0, "polling_aws_pages_events_per_s": 1984.6,
               "checkpoint_bytes_per_min_at_100_eps": 717475}


def _problems(text: str, page: str = "docs/somewhere.md") -> list[str]:
    sources = figures.Sources()
    sources.bench = dict(_CASE_BENCH)
    found = [figures.check_marker(m, sources) for m in figures.markers(page, text)]
    return [p for p in found if p] + [p.message for p in figures.unmarked_figures(page, text)]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("Kinesis drained 38,500 events/s<!-- bench:kinesis_events_per_s --> in the benchmark.", None),
        ("Kinesis drained 29,800 events/s<!-- bench:kinesis_events_per_s -->.", "shows 29,800, but"),
        ("It was 19.4 times<!-- bench:kinesis_events_per_s/polling_aws_pages_events_per_s --> polling.", None),
        ("It was 16 times<!-- bench:kinesis_events_per_s/polling_aws_pages_events_per_s --> polling.", "shows 16"),
        ("about 0.7 MB<!-- bench:checkpoint_bytes_per_min_at_100_eps/1000000 --> a minute", None),
        ("1,380–1,702 events/s<!-- recording:audit_events_per_s_1cpu -->", None),
        ("1,300–1,702 events/s<!-- recording:audit_events_per_s_1cpu -->", "shows 1,300–1,702"),
        ("about 1,300 events/s<!-- recording:audit_events_per_s_1cpu -->", "is the range"),
        ("1,100 events/s<!-- code:components.falco.AUDIT_EVENTS_PER_REPLICA -->", None),
        ("1,300 events/s<!-- code:components.falco.AUDIT_EVENTS_PER_REPLICA -->", "shows 1,300"),
        ("38,500 events/s<!-- bench:no_such_figure -->", "has no 'no_such_figure'"),
        ("38,500 events/s<!-- recording:no_such_fact -->", "has no 'no_such_fact'"),
        ("fast<!-- bench:kinesis_events_per_s -->", "does not follow a figure"),
        ("In the benchmark it drained 38,500 events/s on one core.", "'38,500 events/s' in measurement prose"),
        ("A real Falco evaluated about 2,200/s on 2 CPUs.", "'2,200/s' in measurement prose"),
        ("The benchmark's idle forwarder used 0.3 % of a core.", "'0.3 % of a core' in measurement prose"),
        ("The benchmark ran at 1,000 events/s<!-- given -->.", None),
        ("The default cap is 3 calls/s.", None),
        ("In the benchmark the cap was `50 calls/s` in code.", None),
    ],
)
def test_a_quoted_figure_is_checked_against_its_marker_or_refused_without_one(text: str, complaint: str | None) -> None:
    problems = _problems(text)
    if complaint is None:
        assert problems == []
    else:
        assert len(problems) == 1 and complaint in problems[0], problems


def test_the_benchmarks_page_is_measurement_prose_throughout() -> None:
    assert _problems("The default cap is 3 calls/s.", "docs/benchmarks.md") != []


def _bench_output() -> list[str]:
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```\n(.*?)```", page, re.DOTALL) if "[sources]" in b)
    return block.splitlines()


def test_the_benchmark_output_shown_is_the_recorded_run() -> None:
    recorded = figures.load_bench()
    shown = _bench_output()
    assert json.loads(shown[-1]) == recorded["result"]
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    assert recorded["measured_on"] in page and f"`{recorded['commit'][:7]}`" in page
    # The [sources] lines are what the benchmark prints for that JSON line (it ran with its default --rate).
    from tests.bench.run import say_sources

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        say_sources(recorded["result"], 1000)
    assert [line for line in shown if line.startswith("[sources]")] == printed.getvalue().splitlines()


def test_the_latency_table_shown_has_the_recorded_worst_cases() -> None:
    result = figures.load_bench()["result"]
    rows = [line for line in _bench_output() if re.match(r"\s+\d+\s+\d+\s", line)]
    assert [int(row.split()[0]) for row in rows] == [5, 30, 90, 300]
    for row in rows:
        n = int(row.split()[0])
        cells = [(float(w), float(m)) for w, m in re.findall(r"(\d+\.\d+) /\s+(\d+\.\d+)", row)]
        assert len(cells) == 4
        # Columns 1, 50 and 200 events/s: the worst of them is the JSON's worst case for N.
        assert max(w for w, _ in cells[:3]) == result[f"sim_worst_latency_s_n{n}"]
        if n == 90:
            assert cells[2][1] == result["sim_slowdown_median_s"]


def test_the_recordings_say_what_the_documents_quote_from_them() -> None:
    shared_corpus_file("real-falco/README.md")  # the recordings: skipped where they are not beside the repository
    assert figures.check_recordings(SHARED, figures.load_recordings()) == []


def test_a_recording_that_does_not_say_the_quoted_figure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("Falco managed 2,103–2,439 events/s on 2 CPUs.\n", encoding="utf-8")
    (tmp_path / "log.jsonl").write_text('{"a": 1}\n{"bb": 22}\n', encoding="utf-8")
    facts = {
        "right": {"value": [2103, 2439], "source": "notes.md", "quote": "2,103–2,439 events/s on 2 CPUs"},
        "wrong_value": {"value": [2100, 2439], "source": "notes.md", "quote": "2,103–2,439 events/s on 2 CPUs"},
        "not_said": {"value": 1300, "source": "notes.md", "quote": "1,300 under a 1-CPU quota"},
        "mean": {"value": 9, "source": "log.jsonl", "compute": "mean_line_bytes"},
        "mean_wrong": {"value": 12, "source": "log.jsonl", "compute": "mean_line_bytes"},
        "absent": {"value": 1, "source": "nope.md", "quote": "1"},
    }
    problems = figures.check_recordings(tmp_path, facts)
    assert [p.split(":")[0] for p in problems] == ["wrong_value", "not_said", "mean_wrong", "absent"]


# --- what the lab detects -----------------------------------------------------------------------------------


def test_the_alerts_shown_for_each_threat_scenario_are_what_the_labs_falco_prints_for_the_recording() -> None:
    """docs/data/threat-alerts.json is the rule evaluator's output on the recording (kept outside the repository):
    computed again here, with the rules as they are now, wherever ../shared and FALCO_PLUGINS_REPO are."""
    from support.threat_scenarios import ALERTS_FILE, printed_alerts, render_alerts

    computed = render_alerts(printed_alerts())
    assert computed == ALERTS_FILE.read_text(encoding="utf-8"), (
        "the lab's Falco prints other alerts for the recorded threat scenarios than docs/data/threat-alerts.json "
        "says: run `python -m docs_tools threat-alerts`, then `make docs`"
    )


def test_the_detection_page_lists_every_rule_and_every_switched_off_upstream_rule() -> None:
    from components.falco.rules import RULES
    from components.falco.upstream_changes import UPSTREAM_CHANGES

    page = (DOCS / "detection.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"\n| {detection.cell(rule.name)} | {rule.priority.capitalize()} |" in page, rule.name
    for change in UPSTREAM_CHANGES:
        assert f"\n| {detection.cell(change.rule)} | {detection.cell(change.why)} |" in page, change.rule


def test_the_coverage_table_names_every_finding_type_the_rules_know_exactly_once() -> None:
    from components.falco.rules.guardduty import FINDING_TYPES

    entries = yaml.safe_load((ROOT / detection.COVERAGE_FILE).read_text(encoding="utf-8"))
    table = detection.coverage_table(entries, FINDING_TYPES, {}, {})
    assert len(table.splitlines()) == 2 + len(entries)
    first = entries[0]["types"][0]
    with pytest.raises(DocsError, match=f"missing \\[{re.escape(repr(first))}\\]"):
        detection.coverage_table(entries[1:], FINDING_TYPES, {}, {})
    with pytest.raises(DocsError, match="named twice"):
        detection.coverage_table([*entries, entries[0]], FINDING_TYPES, {}, {})
    with pytest.raises(DocsError, match="not finding types"):
        detection.coverage_table([{**entries[0], "types": ["Impact:Kubernetes/Nothing"]}], FINDING_TYPES, {}, {})


def test_a_finding_type_with_tactic_variants_is_one_line_of_the_table() -> None:
    one = detection.finding_types(["Policy:Kubernetes/ExposedDashboard"])
    assert one == "Policy:<wbr>Kubernetes/<wbr>ExposedDashboard"
    grouped = detection.finding_types(
        ["Discovery:Kubernetes/TorIPCaller", "Impact:Kubernetes/TorIPCaller", "Impact:Kubernetes/MaliciousIPCaller"]
    )
    assert grouped.split("<br>") == [
        "•&nbsp;{Discovery, Impact}:<wbr>Kubernetes/<wbr>TorIPCaller",
        "•&nbsp;Impact:<wbr>Kubernetes/<wbr>MaliciousIPCaller",
    ]


# --- commands the documents show ----------------------------------------------------------------------------


def test_the_forwarder_guide_shows_the_commands_the_stack_outputs_hold() -> None:
    from tests.test_audit_forwarder import GIVEN_IMAGE, _deploy

    forwarder = _deploy(image=GIVEN_IMAGE).result
    page = (DOCS / "forwarder.md").read_text(encoding="utf-8")
    assert resolve(forwarder.logs_command) + "\n" in page
    assert resolve(forwarder.metrics_command) + "\n" in page
    assert "logs deploy/audit-forwarder -f" not in page


def test_the_replay_example_reads_a_file_the_user_makes_not_the_shared_corpus() -> None:
    page = (DOCS / "forwarder.md").read_text(encoding="utf-8")
    example = next(b for b in re.findall(r"```sh\n(.*?)```", page, re.DOTALL) if "forwarder replay" in b)
    assert "../shared" not in page
    assert "> audit.jsonl" in example and "replay audit.jsonl" in example


def test_the_benchmark_help_names_no_issue() -> None:
    from tests.bench.run import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    assert "make bench" in out.getvalue()
    assert "issue" not in out.getvalue().lower()
