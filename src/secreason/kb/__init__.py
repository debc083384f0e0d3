"""Offline knowledge bases: ATT&CK, CWE and CVSS, indexed once and cached.

``load_attack()`` and ``load_cwe()`` read a compact index built on first use (see
``kb.cache``) and are memoised per process; ``kb.cvss`` wraps the ``cvss`` package.
Unknown ids raise ``UnknownEntryError`` (a ``KeyError``) with a message that says why.
"""

from secreason.kb.attack import VERSION_NOTE as ATTACK_VERSION_NOTE
from secreason.kb.attack import AttackKB, Group, Software, Tactic, Technique, Use, load_attack
from secreason.kb.cache import UnknownEntryError, cache_dir
from secreason.kb.cvss import CVSSResult, CVSSVectorError, describe_vector
from secreason.kb.cwe import CWE_VERSION, CWECatalog, Weakness, load_cwe, parse_cwe_id

__all__ = [
    "ATTACK_VERSION_NOTE",
    "CWE_VERSION",
    "AttackKB",
    "CVSSResult",
    "CVSSVectorError",
    "CWECatalog",
    "Group",
    "Software",
    "Tactic",
    "Technique",
    "UnknownEntryError",
    "Use",
    "Weakness",
    "cache_dir",
    "describe_vector",
    "load_attack",
    "load_cwe",
    "parse_cwe_id",
]
