"""One generator per kind of knowledge-base item (the kinds listed in ``synthesize.KINDS``).

Each generator walks one knowledge base in a fixed order and yields Samples whose gold
answer comes straight from the knowledge base, with the facts that justify it (for the
template teacher) and the entity that decides its split:

* CWE items are split by CWE id; ATT&CK technique items by the parent technique (a
  held-out T1059 takes its sub-techniques with it); multi-technique report items and
  actor attribution items by group; CVSS items by vector.
* Multiple-choice distractors are knowledge-base siblings: CWE entries under the same
  parent in view 1000, other tactics of the matrix, the other severity bands.

``synthesize`` looks each kind up by name here; the generators live in one module per
knowledge base (``cwe``, ``attack``, ``cvss``), with what they share in ``parts``.
"""

from secreason.data.kb_items.actor_scrub import scrub_actor, scrubbable_software
from secreason.data.kb_items.attack import (
    group_profile_to_actor,
    group_report_to_techniques,
    names_every_technique,
    procedure_to_technique,
    technique_to_id,
    technique_to_tactic,
)
from secreason.data.kb_items.cvss import cvss_description_to_vector, cvss_vector_to_severity
from secreason.data.kb_items.cwe import cve_to_cwe, cwe_name_mcq
from secreason.data.kb_items.parts import LETTERS, first_sentences, pick_distractors

__all__ = [
    "LETTERS",
    "cve_to_cwe",
    "cvss_description_to_vector",
    "cvss_vector_to_severity",
    "cwe_name_mcq",
    "first_sentences",
    "group_profile_to_actor",
    "group_report_to_techniques",
    "names_every_technique",
    "pick_distractors",
    "procedure_to_technique",
    "scrub_actor",
    "scrubbable_software",
    "technique_to_id",
    "technique_to_tactic",
]
