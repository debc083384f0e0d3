"""The facts of the demo world: a few dozen real ids, each with plain, short phrasings.

Kept apart from the item makers (``data.demo``) because this is the part one edits:
adding a weakness or a phrasing changes what the tiny model must learn, not how items
are built. The vocabulary is small on purpose (a ~1k BPE tokenizer covers it), the ids
and tactics are real, and each class has several phrasings (``cues``) ordered so that
the first share of them is what the template teacher covers.
"""

from __future__ import annotations

from dataclasses import dataclass


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
