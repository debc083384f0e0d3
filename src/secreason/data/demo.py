"""A small, regular world of cyber items that a ~1M-parameter model can learn from scratch.

The real knowledge bases speak a vocabulary of tens of thousands of words; a tiny model
with a ~1k BPE vocabulary trained in minutes cannot learn that. The demo instead draws
items from a few dozen facts (real CWE ids, ATT&CK technique ids and tactics, CVSS
metric values) phrased in plain, short sentences. Three choices make it a good test
bed for SFT followed by RL (see issue 4):

* Every class has several *phrasings* (cues). ``meta["teacher_seen"]`` is True only
  for items whose cues all lie in the first share of each class's phrasings: SFT on
  those alone teaches the format and part of the mapping, while RL prompts cover every
  phrasing, so RL has something left to learn.
* Held-out items differ by *entity* (a product, an actor) never seen in training,
  built from words training does see: hold out combinations, not vocabulary.
* Each item carries its grounding ``meta["facts"]``: short sentences from the world's
  facts that the template teacher turns into step-by-step reasoning.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from secreason.data.synthesize import build_sample, entity_split
from secreason.tasks.base import Sample

DEMO_TASKS = ("cwe", "cvss", "ate", "mcq")
PROVENANCE = "secreason demo world v1"


@dataclass(frozen=True)
class Weakness:
    cwe: int
    name: str
    cues: tuple[str, ...]


# Confusable pairs (read vs write, XSS vs CSRF) are there on purpose.
WEAKNESSES = (
    Weakness(
        79,
        "cross site scripting",
        (
            "a crafted link runs script in the browser",
            "a comment field shows script to other users",
            "a name field is put in the page without escaping",
            "an attacker adds html and script to the page",
        ),
    ),
    Weakness(
        89,
        "sql injection",
        (
            "a crafted id changes the database query",
            "quotes in the search field reach the sql query",
            "the login form builds a query from user input",
            "a crafted parameter reads other rows from the database",
        ),
    ),
    Weakness(
        78,
        "os command injection",
        (
            "a crafted host name runs shell commands",
            "user input reaches a system shell call",
            "the ping form passes input to the shell",
            "a crafted file name runs commands on the server",
        ),
    ),
    Weakness(
        22,
        "path traversal",
        (
            "dot dot slash in the file name reads files outside the folder",
            "a crafted path reads the password file",
            "the download page opens any file path",
            "a crafted file name writes outside the upload folder",
        ),
    ),
    Weakness(
        787,
        "out of bounds write",
        (
            "a long name writes past the end of a buffer",
            "a crafted header overflows a heap buffer",
            "a large count writes past the end of an array",
            "a crafted image copies too many bytes into a buffer",
        ),
    ),
    Weakness(
        125,
        "out of bounds read",
        (
            "a short packet reads past the end of a buffer",
            "a crafted length reads memory past the array",
            "a crafted image reads bytes before the buffer",
            "a bad index reads past the end of a table",
        ),
    ),
    Weakness(
        416,
        "use after free",
        (
            "a closed session object is used after it is freed",
            "the parser uses memory after it frees it",
            "a freed buffer is read again by a timer",
            "a crafted request frees an object that is still in use",
        ),
    ),
    Weakness(
        352,
        "cross site request forgery",
        (
            "a crafted page makes the browser send a change request",
            "the settings form has no token check",
            "a link in an email changes the password of a logged in user",
            "state changing requests do not check where they come from",
        ),
    ),
)


@dataclass(frozen=True)
class Technique:
    id: str
    name: str
    tactic: str
    cues: tuple[str, ...]


TECHNIQUES = (
    Technique(
        "T1059.001",
        "powershell",
        "execution",
        (
            "ran a powershell script",
            "used powershell to start the payload",
            "ran encoded powershell commands",
        ),
    ),
    Technique(
        "T1566.001",
        "spearphishing attachment",
        "initial access",
        (
            "sent an email with a bad attachment",
            "mailed a word file with a macro",
            "sent a zip file to staff by email",
        ),
    ),
    Technique(
        "T1071.001",
        "web protocols",
        "command and control",
        (
            "sent commands over http",
            "used web traffic to talk to its server",
            "hid its control traffic in https requests",
        ),
    ),
    Technique(
        "T1053.005",
        "scheduled task",
        "persistence",
        (
            "created a scheduled task to run the payload",
            "added a task that runs at every logon",
            "used schtasks to start the tool each day",
        ),
    ),
    Technique(
        "T1003.001",
        "lsass memory",
        "credential access",
        (
            "dumped lsass memory to get passwords",
            "read passwords from the lsass process",
            "used a tool to copy lsass memory",
        ),
    ),
    Technique(
        "T1486",
        "data encrypted for impact",
        "impact",
        (
            "encrypted files and asked for a ransom",
            "locked the files of the victim with a key",
            "ran ransomware on the file servers",
        ),
    ),
    Technique(
        "T1105",
        "ingress tool transfer",
        "command and control",
        (
            "downloaded more tools to the host",
            "copied a second tool from its server",
            "pulled a new payload onto the machine",
        ),
    ),
    Technique(
        "T1027",
        "obfuscated files or information",
        "defense evasion",
        (
            "packed the payload to hide it",
            "encoded its strings to avoid detection",
            "hid the payload in a scrambled file",
        ),
    ),
)
TACTICS = (
    "execution",
    "initial access",
    "command and control",
    "persistence",
    "credential access",
    "impact",
    "defense evasion",
)

# CVSS v3.1 base metrics: value -> (metric words, phrasings). Scope is always unchanged
# in the demo to keep descriptions short.
CVSS_METRICS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "AV": {
        "N": ("attack vector network", ("over the network", "from the internet")),
        "A": ("attack vector adjacent", ("from the same local network", "from a nearby network")),
        "L": ("attack vector local", ("from a local shell", "by a user on the host")),
        "P": ("attack vector physical", ("with physical access", "with the device in hand")),
    },
    "AC": {
        "L": ("attack complexity low", ("every time", "reliably")),
        "H": ("attack complexity high", ("only when a race is won", "only under rare timing")),
    },
    "PR": {
        "N": ("privileges required none", ("without an account", "with no login")),
        "L": ("privileges required low", ("with a normal user account", "as a basic user")),
        "H": ("privileges required high", ("with an admin account", "as an administrator")),
    },
    "UI": {
        "N": ("user interaction none", ("with no user action", "without any help from a user")),
        "R": (
            "user interaction required",
            ("after a user opens a file", "when a user clicks a link"),
        ),
    },
    "C": {
        "H": ("confidentiality high", ("read all data", "read every secret")),
        "L": ("confidentiality low", ("read some data", "read a few records")),
        "N": ("confidentiality none", ("read no data", "see nothing private")),
    },
    "I": {
        "H": ("integrity high", ("change all data", "rewrite any file")),
        "L": ("integrity low", ("change some data", "edit a few fields")),
        "N": ("integrity none", ("change no data", "alter nothing")),
    },
    "A": {
        "H": ("availability high", ("crash the service", "take the service down")),
        "L": ("availability low", ("slow the service", "make the service lag")),
        "N": ("availability none", ("not touch uptime", "leave the service up")),
    },
}

VENDORS = ("acme", "nova", "blue", "delta", "orbit", "pixel", "tiger", "cedar", "lumen", "zen")
PRODUCTS = (
    "mail server",
    "web portal",
    "file gateway",
    "print service",
    "chat app",
    "photo viewer",
    "vpn client",
    "wiki",
)
ACTOR_WORDS = ("red", "green", "silver", "black", "white", "gold", "iron", "amber")
ACTOR_ANIMALS = ("fox", "panda", "bear", "kitten", "spider", "falcon", "wolf", "tiger")
LETTERS = "ABCD"


def _seen(cue_index: int, n_cues: int, teacher_share: float) -> bool:
    """Is a phrasing among those the (template) teacher covers?"""
    return cue_index < max(1, round(n_cues * teacher_share))


def _cwe_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    weak = rng.choice(WEAKNESSES)
    cue_i = rng.randrange(len(weak.cues))
    vendor, product = rng.choice(VENDORS), rng.choice(PRODUCTS)
    version = f"{rng.randint(1, 9)}.{rng.randint(0, 9)}"
    entity = f"product:{vendor} {product}"
    description = f"In {vendor} {product} {version}, {weak.cues[cue_i]}."
    facts = [
        f"The text says {weak.cues[cue_i]}.",
        f"That is {weak.name}.",
        f"{weak.name.capitalize()} is CWE-{weak.cwe}.",
    ]
    return build_sample(
        "cwe",
        reference=f"CWE-{weak.cwe}",
        meta={
            "description": description,
            "facts": facts,
            "conclude": False,
            "variant": cue_i,
            "teacher_seen": _seen(cue_i, len(weak.cues), share),
            "label": f"CWE-{weak.cwe}",
        },
        entity=entity,
        split=entity_split(entity, heldout, seed),
        provenance=PROVENANCE,
    )


def _cvss_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    vendor, product = rng.choice(VENDORS), rng.choice(PRODUCTS)
    entity = f"product:{vendor} {product}"
    chosen: dict[str, tuple[str, str, str, int, int]] = {}
    # Half the items use only each value's first phrasing; the rest mix in others, so
    # teacher-covered items are common while every phrasing still occurs.
    plain = rng.random() < 0.5
    for metric, values in CVSS_METRICS.items():
        value = rng.choice(sorted(values))
        words, cues = values[value]
        i = 0 if plain else rng.randrange(len(cues))
        chosen[metric] = (value, words, cues[i], i, len(cues))
    if not plain and all(v[3] == 0 for v in chosen.values()):
        metric = rng.choice(sorted(chosen))
        value, words, _, _, n = chosen[metric]
        chosen[metric] = (value, words, CVSS_METRICS[metric][value][1][1], 1, n)
    c = {m: v[2] for m, v in chosen.items()}
    description = (
        f"An attacker can exploit {vendor} {product} {c['AV']}, {c['AC']}, {c['PR']} and "
        f"{c['UI']}. The attacker can {c['C']}, {c['I']} and {c['A']}."
    )
    facts = [f"{v[2].capitalize()} means {m}:{v[0]}." for m, v in chosen.items()]
    facts.insert(4, "Nothing leaves the product, so S:U.")
    parts = [f"{m}:{chosen[m][0]}" for m in ("AV", "AC", "PR", "UI")] + ["S:U"]
    parts += [f"{m}:{chosen[m][0]}" for m in ("C", "I", "A")]
    vector = "CVSS:3.1/" + "/".join(parts)
    seen = all(_seen(v[3], v[4], share) for v in chosen.values())
    return build_sample(
        "cvss",
        reference=vector,
        meta={
            "description": description,
            "facts": facts,
            "conclude": False,
            "variant": max(v[3] for v in chosen.values()),
            "teacher_seen": seen,
            "label": vector,
        },
        entity=entity,
        split=entity_split(entity, heldout, seed),
        provenance=PROVENANCE,
    )


def _ate_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    actor = f"{rng.choice(ACTOR_WORDS)} {rng.choice(ACTOR_ANIMALS)}"
    entity = f"actor:{actor}"
    k = rng.choice((1, 2))
    techs = rng.sample(TECHNIQUES, k)
    idx = [rng.randrange(len(t.cues)) for t in techs]
    sentences = [f"The {actor} group {techs[0].cues[idx[0]]}."]
    if k == 2:
        sentences.append(f"Then it {techs[1].cues[idx[1]]}.")
    facts: list[str] = []
    for t, i in zip(techs, idx, strict=True):
        facts += [f"It {t.cues[i]}.", f"That is {t.name}, {t.id}."]
    ids = sorted(t.id for t in techs)
    return build_sample(
        "ate",
        reference=", ".join(ids),
        meta={
            "description": " ".join(sentences),
            "facts": facts,
            "conclude": False,
            "variant": max(idx),
            "teacher_seen": all(
                _seen(i, len(t.cues), share) for t, i in zip(techs, idx, strict=True)
            ),
            "label": ", ".join(ids),
        },
        entity=entity,
        split=entity_split(entity, heldout, seed),
        provenance=PROVENANCE,
    )


def _mcq_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    tech = rng.choice(TECHNIQUES)
    cue_i = rng.randrange(len(tech.cues))
    distractors = rng.sample([t for t in TACTICS if t != tech.tactic], 3)
    options = [tech.tactic, *distractors]
    rng.shuffle(options)
    gold = LETTERS[options.index(tech.tactic)]
    actor = f"{rng.choice(ACTOR_WORDS)} {rng.choice(ACTOR_ANIMALS)}"
    entity = f"actor:{actor}"
    question = f"The {actor} group {tech.cues[cue_i]}. Which tactic does this serve?"
    facts = [
        f"It {tech.cues[cue_i]}.",
        f"That is {tech.name}, {tech.id}.",
        f"{tech.id} serves the {tech.tactic} tactic.",
        f"The {tech.tactic} tactic is option {gold}.",
    ]
    return build_sample(
        "mcq",
        reference=gold,
        meta={
            "question": question,
            "options": dict(zip(LETTERS, options, strict=True)),
            "facts": facts,
            "conclude": False,
            "variant": cue_i,
            "teacher_seen": _seen(cue_i, len(tech.cues), share),
            "label": tech.tactic,
        },
        entity=entity,
        split=entity_split(entity, heldout, seed),
        provenance=PROVENANCE,
    )


_MAKERS = {"cwe": _cwe_item, "cvss": _cvss_item, "ate": _ate_item, "mcq": _mcq_item}


def make_demo_items(
    n_per_task: int,
    seed: int = 0,
    *,
    tasks: Sequence[str] = DEMO_TASKS,
    teacher_share: float = 0.5,
    heldout_fraction: float = 0.2,
) -> tuple[list[Sample], list[Sample]]:
    """Return ``(train, heldout)`` with ``n_per_task`` distinct items per task in total.

    The split is by entity (product or actor), deterministic for ``seed``; items are
    unique by content id. ``teacher_share`` sets which phrasings count as
    ``teacher_seen`` (SFT should use only those; RL prompts may use all).
    """
    unknown = sorted(set(tasks) - set(_MAKERS))
    if unknown:
        raise ValueError(f"unknown demo task(s) {unknown}; choose from {sorted(_MAKERS)}")
    rng = random.Random(seed)
    train: list[Sample] = []
    heldout: list[Sample] = []
    for task in tasks:
        seen: set[str] = set()
        misses = 0
        while len(seen) < n_per_task:
            item = _MAKERS[task](rng, teacher_share, heldout_fraction, seed)
            if item.id in seen:
                misses += 1
                if misses > 10_000:
                    raise ValueError(f"demo world too small for {n_per_task} distinct {task} items")
                continue
            misses = 0
            seen.add(item.id)
            (heldout if item.meta["split"] == "heldout" else train).append(item)
    return train, heldout


def demo_corpus(items: Sequence[Sample]) -> list[str]:
    """Texts to train the tiny tokenizer on: prompts and template traces of the items."""
    from secreason.data.template_teacher import template_trace

    texts: list[str] = []
    for item in items:
        texts.extend(m["content"] for m in item.messages)
        texts.append(template_trace(item))
    return texts
