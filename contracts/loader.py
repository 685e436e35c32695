"""Load and check the contracts; a broken contract stops start-up naming file and field."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from contracts.errors import OperatorError
from contracts.model import CodeSystem, Dataset, Timeliness
from contracts.yamltext import safe_load

CONTRACTS_DIR = Path(__file__).parent


class ContractError(OperatorError):
    """A contract file is malformed or inconsistent."""


@dataclass(frozen=True)
class Contracts:
    datasets: dict[str, Dataset]
    codes: dict[str, CodeSystem]
    timeliness: Timeliness
    cross_dataset: dict[str, dict[str, Any]]
    root: Path

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise KeyError(f"unknown dataset {name!r}; known: {sorted(self.datasets)}") from None

    def datasets_for(self, kind: str) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.kind == kind]


def _read_yaml(path: Path) -> Any:
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot read YAML: {exc}") from exc


def _describe(error: ValidationError, raw: Any) -> str:
    """Turn pydantic's locations into 'field 'x'' wording a contract author can follow."""
    lines = []
    for err in error.errors():
        loc = list(err["loc"])
        where = []
        node = raw
        for part in loc:
            if isinstance(node, dict):
                node = node.get(part)
                where.append(str(part))
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                name = node.get("name") or node.get("id") if isinstance(node, dict) else None
                where.append(f"{part} ({name!r})" if name else str(part))
            else:
                where.append(str(part))
        lines.append(f"{'.'.join(where) or '<top>'}: {err['msg']}")
    return "; ".join(lines)


def _parse(model: type, raw: Any, path: Path, name: str | None = None):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        prefix = f"{path}: " + (f"{name}: " if name else "")
        raise ContractError(prefix + _describe(exc, raw)) from None


def load_model(path: Path, model: type):
    """One YAML configuration file validated by a pydantic `model`; a problem is a
    ContractError naming the file and the field (the scoring and suggestion configs)."""
    return _parse(model, _read_yaml(path), path)


def load_contracts(root: Path | None = None) -> Contracts:
    root = Path(root) if root else CONTRACTS_DIR
    codes_raw = _read_yaml(root / "codes.yaml") or {}
    codes = {
        name: _parse(CodeSystem, raw, root / "codes.yaml", name) for name, raw in codes_raw.items()
    }
    datasets: dict[str, Dataset] = {}
    for path in sorted((root / "datasets").glob("*.yaml")):
        raw = _read_yaml(path)
        dataset = _parse(Dataset, raw, path)
        if dataset.dataset != path.stem:
            raise ContractError(
                f"{path}: dataset is named {dataset.dataset!r}, file is {path.stem!r}"
            )
        for field in dataset.fields:
            if field.codes and field.codes not in codes:
                raise ContractError(
                    f"{path}: field {field.name!r}: unknown code system {field.codes!r}"
                )
        datasets[dataset.dataset] = dataset
    if not datasets:
        raise ContractError(f"{root / 'datasets'}: no dataset contracts found")
    for dataset in datasets.values():
        _check_references(dataset, datasets, root / "datasets" / f"{dataset.dataset}.yaml")
    timeliness = _parse(Timeliness, _read_yaml(root / "timeliness.yaml"), root / "timeliness.yaml")
    cross = _read_yaml(root / "cross_dataset.yaml") or {}
    _check_cross_dataset(cross, datasets, root / "cross_dataset.yaml")
    return Contracts(datasets, codes, timeliness, cross, root)


def _check_references(dataset: Dataset, datasets: dict[str, Dataset], path: Path) -> None:
    refs = [
        (f"field {f.name!r}", c.params)
        for f in dataset.fields
        for c in f.checks
        if c.rule == "exists_in"
    ]
    refs += [
        (f"record check {c.id!r}", c.params["birth_from"])
        for c in dataset.record_checks
        if "birth_from" in c.params
    ]
    for where, params in refs:
        target = datasets.get(params["dataset"])
        if target is None:
            raise ContractError(f"{path}: {where}: refers to unknown dataset {params['dataset']!r}")
        for key in ("field", "key"):
            if key in params and params[key] not in target.by_name:
                raise ContractError(
                    f"{path}: {where}: {params['dataset']} has no field {params[key]!r}"
                )


def _check_cross_dataset(cross: dict[str, Any], datasets: dict[str, Dataset], path: Path) -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "dataset" in node:
                target = datasets.get(node["dataset"])
                if target is None:
                    raise ContractError(f"{path}: {where}: unknown dataset {node['dataset']!r}")
                for key, value in node.items():
                    if key.endswith(("field", "key")) and value not in target.by_name:
                        raise ContractError(
                            f"{path}: {where}: {node['dataset']} has no field {value!r}"
                        )
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}.{i}")

    for name, rule in cross.items():
        walk(rule, name)


@cache
def contracts() -> Contracts:
    """The bundled contracts, loaded once per process."""
    return load_contracts()
