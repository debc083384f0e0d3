"""``secreason kb``: look up CWE, ATT&CK and CVSS offline, for people (rich) or tools (--json).

Every answer names the knowledge-base version it came from, because CWE and ATT&CK ids
are revised between releases. Bad input exits with code 2 and a message saying why.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import typer

from secreason.cli._errors import fail as _fail

kb_app = typer.Typer(no_args_is_help=True, help="Offline knowledge bases: CWE, ATT&CK, CVSS.")


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _block(title: str, rows: list[tuple[str, str]], body: str = "") -> None:
    """A titled panel: a two-column table of fields, then free text."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(key, Text(value))
    parts: list[Any] = [table]
    if body:
        parts += [Text(""), Text(body)]
    _console().print(Panel(Group(*parts), title=Text(title, style="bold"), expand=False))


def _names(items: list[Any], limit: int = 12) -> str:
    shown = ", ".join(f"{i.id} {i.name}" for i in items[:limit])
    more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return (shown + more) or "-"


# -- CWE ---------------------------------------------------------------------------------


@kb_app.command("cwe")
def cwe_command(
    query: str = typer.Argument(..., help="A CWE id (79, CWE-79) or words to search names."),
    examples: int = typer.Option(3, "--examples", min=0, help="Observed CVE examples to show."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A CWE entry: description, hierarchy in views 1000 and 1003, CVE examples."""
    from secreason.kb.cwe import VIEW_RESEARCH, VIEW_SIMPLIFIED, load_cwe, parse_cwe_id

    catalog = load_cwe()
    try:
        number = parse_cwe_id(query)
    except ValueError:
        hits = catalog.search(query, limit=20)
        if not hits:
            _fail(f"{query!r} is neither a CWE id nor part of any CWE {catalog.version} name")
        if as_json:
            found = [{"id": h.id, "name": h.name, "abstraction": h.abstraction} for h in hits]
            _emit_json({"source": f"CWE {catalog.version}", "query": query, "matches": found})
        else:
            rows = [(h.cwe_id, f"{h.name} [{h.abstraction}]") for h in hits]
            _block(f"CWE {catalog.version}: entries matching {query!r}", rows)
        return
    try:
        entry = catalog.get(number)
    except KeyError as error:
        _fail(str(error))

    hierarchy: dict[str, dict[str, Any]] = {}
    for view in (VIEW_RESEARCH, VIEW_SIMPLIFIED):
        hierarchy[str(view)] = {
            "parents": list(entry.parents(view)),
            "children": list(entry.children(view)),
            "ancestors": catalog.ancestors(number, view),
            "member": number in catalog.view_members(view),
        }
    if as_json:
        payload = dataclasses.asdict(entry)
        payload.pop("parent_ids"), payload.pop("child_ids")
        payload["examples"] = [{"cve": c, "description": d} for c, d in entry.examples]
        _emit_json({"source": f"CWE {catalog.version}", **payload, "views": hierarchy})
        return

    def labelled(ids: list[int]) -> str:
        return ", ".join(f"CWE-{i} {catalog.get(i).name}" for i in ids) or "-"

    rows = [
        ("Source", f"CWE {catalog.version}"),
        ("Abstraction", entry.abstraction),
        ("Status", entry.status),
        ("Mapping", entry.mapping_usage or "-"),
    ]
    if entry.alternate_terms:
        rows.append(("Also known as", ", ".join(entry.alternate_terms)))
    for view, label in ((VIEW_RESEARCH, "1000"), (VIEW_SIMPLIFIED, "1003")):
        facts = hierarchy[label]
        rows.append((f"Parents ({label})", labelled(facts["parents"])))
        rows.append((f"Children ({label})", labelled(facts["children"][:8])))
        if view == VIEW_RESEARCH:
            rows.append(("Ancestors (1000)", " > ".join(f"CWE-{i}" for i in facts["ancestors"])))
    for consequence in entry.consequences:
        rows.append(("Consequence", consequence))
    for cve, text in entry.examples[:examples]:
        rows.append((cve, text))
    if len(entry.examples) > examples:
        rows.append(("", f"(+{len(entry.examples) - examples} more CVE examples: --examples N)"))
    body = entry.description + (f"\n\n{entry.extended}" if entry.extended else "")
    _block(f"{entry.cwe_id}: {entry.name}", rows, body)


# -- ATT&CK ------------------------------------------------------------------------------


@kb_app.command("attack")
def attack_command(
    query: str = typer.Argument(
        ...,
        help="Technique (T1059.001), tactic (TA0002), group (G0016, APT29), software or "
        "mitigation (M1038).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """An ATT&CK technique, tactic, group, software or mitigation, with its relationships."""
    from secreason.kb.attack import Group, Software, Tactic, Technique, load_attack
    from secreason.kb.mitigations import load_mitigations

    if query.strip().upper().startswith("M") and query.strip()[1:].isdigit():
        _mitigation(query, as_json)
        return
    kb = load_attack()
    try:
        entry = kb.lookup(query)
    except (KeyError, ValueError) as error:
        _fail(str(error))
    payload: dict[str, Any] = {"source": kb.version_note, "kind": type(entry).__name__.lower()}
    payload |= dataclasses.asdict(entry)
    rows: list[tuple[str, str]] = []
    if isinstance(entry, Technique):
        subs = kb.subtechniques(entry.id) if not entry.is_subtechnique else []
        groups = kb.groups_using(entry.id)
        software = kb.software_using(entry.id)
        payload |= {
            "url": entry.url,
            "subtechniques": [t.id for t in subs],
            "groups": [g.id for g in groups],
            "software": [s.id for s in software],
        }
        rows = [("Tactics", ", ".join(kb.tactic(t).name for t in entry.tactics))]
        rows.append(("Platforms", ", ".join(entry.platforms)))
        if entry.parent:
            rows.append(("Parent", _names([kb.technique(entry.parent)])))
        if subs:
            rows.append(("Sub-techniques", _names(subs)))
        mitigations = load_mitigations().for_technique(entry.id)
        payload["mitigations"] = list(mitigations)
        rows += [("Groups", _names(groups)), ("Software", _names(software))]
        rows += [("Mitigations", ", ".join(mitigations) or "-"), ("URL", entry.url)]
    elif isinstance(entry, Tactic):
        techniques = kb.techniques_for_tactic(entry.id)
        payload["techniques"] = [t.id for t in techniques]
        rows = [("Short name", entry.shortname), ("Techniques", _names(techniques, 20))]
    elif isinstance(entry, Group):
        techniques = kb.techniques_used_by(entry.id)
        software = kb.software_used_by(entry.id)
        payload |= {"techniques": [t.id for t in techniques], "software": [s.id for s in software]}
        rows = [("Aliases", ", ".join(entry.aliases)), ("Techniques", _names(techniques, 20))]
        rows.append(("Software", _names(software)))
    elif isinstance(entry, Software):
        techniques = kb.techniques_used_by(entry.id)
        groups = kb.groups_using(entry.id)
        payload |= {"techniques": [t.id for t in techniques], "groups": [g.id for g in groups]}
        rows = [("Type", entry.kind), ("Aliases", ", ".join(entry.aliases))]
        rows += [("Platforms", ", ".join(entry.platforms) or "-")]
        rows += [("Techniques", _names(techniques, 20)), ("Groups", _names(groups))]
    if as_json:
        _emit_json(payload)
        return
    if not getattr(entry, "full_text", True):
        rows.append(("Note", "description is the v18.1 excerpt (no matching v15 full text)"))
    _block(f"{entry.id}: {entry.name}", [("Source", kb.version_note), *rows], entry.description)


def _mitigation(query: str, as_json: bool) -> None:
    """An ATT&CK mitigation and the techniques it mitigates."""
    from secreason.kb.attack import VERSION_NOTE
    from secreason.kb.mitigations import load_mitigations

    try:
        entry = load_mitigations().mitigation(query)
    except (KeyError, ValueError) as error:
        _fail(str(error))
    if as_json:
        payload = {"source": VERSION_NOTE, "kind": "mitigation", **dataclasses.asdict(entry)}
        _emit_json({**payload, "url": entry.url})
        return
    shown = ", ".join(entry.techniques[:20])
    more = f" ... (+{len(entry.techniques) - 20} more)" if len(entry.techniques) > 20 else ""
    rows = [("Source", VERSION_NOTE), ("Mitigates", (shown + more) or "-"), ("URL", entry.url)]
    if not entry.full_text:
        rows.append(("Note", "description is the v18.1 excerpt (no matching v15 full text)"))
    _block(f"{entry.id}: {entry.name}", rows, entry.description)


# -- CVSS --------------------------------------------------------------------------------


@kb_app.command("cvss")
def cvss_command(
    vector: str = typer.Argument(..., help="A vector such as 'CVSS:3.1/AV:N/AC:L/...'."),
    default_version: str = typer.Option(
        None, "--default-version", help="Version to assume when the prefix is missing (3.0)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Validate and score a CVSS v3.0/v3.1/v4.0 vector and explain each base metric."""
    from secreason.kb.cvss import CVSSVectorError, describe, parse

    try:
        result = parse(vector, default_version)
    except CVSSVectorError as error:
        _fail(str(error))
    facts = describe(result)
    if as_json:
        _emit_json({**dataclasses.asdict(result), "facts": facts})
        return
    rows = [
        ("Version", f"CVSS v{result.version}"),
        ("Base score", f"{result.base_score:.1f} ({result.severity})"),
    ]
    if result.score_type not in ("base", "CVSS-B"):
        rows.append((f"{result.score_type} score", f"{result.score:.1f}"))
    if result.exploitability is not None:
        rows.append(
            (
                "Sub-scores",
                f"exploitability {result.exploitability:.1f}, impact {result.impact:.1f}",
            )
        )
    rows += [(f"{m.name} ({m.key})", f"{m.code} = {m.value}") for m in result.metrics]
    _block(result.vector, rows, "\n".join(facts))


# -- index -------------------------------------------------------------------------------


@kb_app.command("index")
def index_command() -> None:
    """Build (or read) the cached indexes now and say where they are."""
    from secreason.kb import attack, cwe
    from secreason.kb.cache import cache_dir, index_path

    for name, module, loader in (
        ("cwe", cwe, cwe.load_cwe),
        ("attack", attack, attack.load_attack),
    ):
        start = time.perf_counter()
        loader()
        elapsed = time.perf_counter() - start
        path = index_path(name, module.index_key(), cache_dir())
        typer.echo(f"{name}: {path} ({elapsed:.2f} s)")
