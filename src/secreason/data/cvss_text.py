"""CVSS items that read like vulnerability reports, not like the CVSS specification.

A CVE description names a component, a flaw, who can reach it and what they gain; the
analyst infers the base metrics from that. Descriptions stitched from the metric
definitions ("the attacker must physically touch the device; no special conditions are
needed...") hand the vector over by string matching. Here each description is written
from parts:

* the flaw: the first sentence of a CWE weakness's definition (``kb.cwe``), with "the
  product" made the component;
* the component, fitting the attack vector (a web API, a Bluetooth stack, a desktop
  viewer, a debug header);
* the attacker, saying where they stand and what account they hold (AV, PR);
* the conditions (AC), any victim action (UI), a crossed boundary (S);
* the effects on confidentiality, integrity and availability.

Every part has several wordings, none of them the specification's, and the reasoning
facts tie each wording to the metric it implies.

The CVE one-liners the CWE catalog quotes are not used as flaws: they state their own
attacker and effect ("allows remote attackers to..."), which would contradict the
generated vector; real CVE text with its real vector comes from NVD (``data.nvd``).
"""

from __future__ import annotations

import random
import re

from secreason.kb.cvss import parse

_COMPONENTS = {
    "N": [
        "the REST API of a self-hosted project tracker",
        "the login portal of an SSL VPN appliance",
        "the web administration console of a network-attached storage device",
        "the SOAP endpoint of an enterprise resource planning server",
        "the GraphQL gateway of an online shop",
        "the mail transfer agent of a groupware suite",
    ],
    "A": [
        "the Bluetooth Low Energy pairing service of a smart lock",
        "the mDNS responder of an IP camera",
        "the Wi-Fi provisioning mode of a smart plug",
        "the DHCP client of an industrial controller",
    ],
    "L": [
        "the document preview handler of a desktop office suite",
        "a setuid helper shipped with a Linux backup agent",
        "the font parser of an image viewer",
        "the update service of an endpoint agent running on the workstation",
    ],
    "P": [
        "the UART debug header of a home router",
        "the USB recovery mode of a point-of-sale terminal",
        "the boot loader of an industrial tablet",
        "the SD-card firmware loader of a drone",
    ],
}
_ATTACKER = {
    ("N", "N"): [
        "an unauthenticated user anywhere on the internet",
        "a remote party without credentials",
    ],
    ("N", "L"): ["a remote user with a regular customer account", "any signed-in remote user"],
    ("N", "H"): [
        "a remote administrator of the application",
        "a remote attacker who holds admin credentials",
    ],
    ("A", "N"): [
        "someone within radio range, without pairing",
        "a device on the same LAN segment, unauthenticated",
    ],
    ("A", "L"): [
        "a guest already joined to the same Wi-Fi network",
        "a paired device with a user-level key",
    ],
    ("A", "H"): [
        "an installer-level account on the same network segment",
        "a neighbour device holding the admin pairing key",
    ],
    ("L", "N"): [
        "anyone able to run code in a low-integrity sandbox process",
        "a script running before any login",
    ],
    ("L", "L"): ["a logged-in standard user", "an unprivileged local account"],
    ("L", "H"): ["a local administrator", "a local account already holding root"],
    ("P", "N"): ["someone with the unit in hand", "a person who can reach the board's connector"],
    ("P", "L"): [
        "an operator with the unit in hand and a staff PIN",
        "a cashier-level user at the terminal",
    ],
    ("P", "H"): [
        "a technician with the unit in hand and the service password",
        "a person at the device holding its maintenance credentials",
    ],
}
_COMPLEXITY = {
    "L": [
        "with a single crafted request",
        "reliably, every time",
        "by sending one malformed message",
    ],
    "H": [
        "but only by winning a narrow race between two threads",
        "but only when a non-default debug option is switched on",
        "but only after observing traffic from a man-in-the-middle position",
    ],
}
_USER = {
    "N": ["", "with no help from anyone"],
    "R": [
        "once a victim opens a crafted file",
        "after tricking a staff member into following a link",
        "when an operator imports a prepared configuration",
    ],
}
_SCOPE = {
    "U": ["", ""],
    "C": [
        "The effects reach the host beyond the component's sandbox.",
        "Code escapes the guest and acts on the hypervisor host.",
        "The payload then runs in the browsers of other tenants.",
    ],
}
_EFFECT = {
    ("C", "H"): ["read every stored credential", "dump the full user database"],
    ("C", "L"): ["learn some internal file paths", "read a few configuration values"],
    ("I", "H"): ["overwrite arbitrary files", "change any record"],
    ("I", "L"): ["alter some log lines", "tamper with a limited set of display settings"],
    ("A", "H"): ["crash the service until it is restarted", "stop the device from booting"],
    ("A", "L"): ["slow responses down for a while", "drop some sessions intermittently"],
}
_PRODUCT = re.compile(r"^(The|A|An) (product|software|system|application|code)\b", re.IGNORECASE)


def _flaw(definition: str, component: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s+", " ".join(definition.split()))[0]
    if _PRODUCT.match(sentence):
        return _PRODUCT.sub(component[0].upper() + component[1:], sentence, count=1)
    return f"In {component}: {sentence[0].lower()}{sentence[1:]}"


def describe_vulnerability(
    vector: str, definition: str, rng: random.Random
) -> tuple[str, list[str]]:
    """A report-style description of a flaw with ``vector``'s base metrics, and the facts
    (one per metric) that connect its wording to the metrics."""
    m = {metric.key: metric.code for metric in parse(vector).base_metrics}
    component = rng.choice(_COMPONENTS[m["AV"]])
    attacker = rng.choice(_ATTACKER[(m["AV"], m["PR"])])
    how = rng.choice(_COMPLEXITY[m["AC"]])
    user = rng.choice(_USER[m["UI"]])
    scope = rng.choice(_SCOPE[m["S"]])
    effects = [rng.choice(_EFFECT[(k, m[k])]) for k in ("C", "I", "A") if m[k] != "N"]
    flaw = _flaw(definition, component)
    exploit = f"It can be exploited by {attacker} {how}"
    exploit += f", {user}." if user else "."
    if effects:
        gain = "An attacker can " + (", ".join(effects[:-1]) + " and " if len(effects) > 1 else "")
        gain += effects[-1] + "."
    else:
        gain = "Exploitation has no effect on data or service."
    untouched = {
        "C": "No data is disclosed.",
        "I": "Stored data is not modified.",
        "A": "The service keeps running.",
    }
    if effects:
        gain += "".join(f" {untouched[k]}" for k in ("C", "I", "A") if m[k] == "N")
    text = " ".join(p for p in (flaw, exploit, gain, scope) if p)
    facts = [
        f"The flaw is in {component}, reached by {attacker}: "
        f"Attack Vector {m['AV']} (AV:{m['AV']}) and Privileges Required {m['PR']} (PR:{m['PR']}).",
        f"It works {how.removeprefix('but ')}: Attack Complexity AC:{m['AC']}.",
        f"User Interaction UI:{m['UI']}"
        + (f", since it happens {user}." if user else ": no one else has to act."),
        f"Scope S:{m['S']}" + (f": {scope}" if scope else ": the impact stays in the component."),
        f"The effects give C:{m['C']}, I:{m['I']}, A:{m['A']}.",
        f"The vector is {vector}.",
    ]
    return text, facts
