"""The activation state machine's definition: one reviewable ASL file plus its substitutions.

The CDK stack and the local runner both render the same file, so the definition moto executes in
tests is byte for byte the one deployed. No ``aws_cdk`` import here: the runner does not ship it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ASL_PATH = Path(__file__).resolve().parent / "statemachines" / "activation.asl.json"

# The only placeholders the file may contain (contracts.md); anything else is a typo.
SUBSTITUTIONS = ("CollectionId", "LedgerTable", "MetricsNamespace")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def activation_template() -> str:
    """The ASL file as stored, placeholders ``${Name}`` unreplaced."""
    return ASL_PATH.read_text(encoding="utf-8")


def render_activation_definition(
    collection_id: str, ledger_table: str, metrics_namespace: str
) -> str:
    """The ASL with ``${CollectionId}``, ``${LedgerTable}`` and ``${MetricsNamespace}`` filled in.

    Values are JSON-escaped so a name can never break the document. Raises ValueError when the
    file holds a placeholder other than those three, or a value is empty.
    """
    values = {
        "CollectionId": collection_id,
        "LedgerTable": ledger_table,
        "MetricsNamespace": metrics_namespace,
    }
    empty = [name for name, value in values.items() if not value]
    if empty:
        raise ValueError(f"activation definition needs non-empty values for {empty}")
    template = activation_template()
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - set(SUBSTITUTIONS))
    if unknown:
        raise ValueError(f"{ASL_PATH.name} has unknown placeholders {unknown}")

    def substitute(match: re.Match[str]) -> str:
        # Placeholders sit inside JSON strings: escape like a JSON string body, without quotes.
        return json.dumps(values[match.group(1)])[1:-1]

    rendered = _PLACEHOLDER.sub(substitute, template)
    json.loads(rendered)  # fail here, not at CreateStateMachine, if the result is not JSON
    return rendered
