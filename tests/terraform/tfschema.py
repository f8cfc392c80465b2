"""Build a Terraform provider schema from the jsii assembly of a prebuilt CDKTF provider wheel.

A `cdktf-cdktf-provider-*` wheel ships `_jsii/<name>@<version>.jsii.tgz`: its `.jsii` JSON describes
every resource and data source of one provider version, and its `lib/*/index.js` tells, for every
argument, whether Terraform wants a block or an attribute and how a block nests. From those:

- a resource or data source is a class whose doc summary links `docs/resources/<name>` (or
  `docs/data-sources/<name>`); its arguments are the properties of the `<Class>Config` struct,
  required unless `optional`; a struct-typed argument is a nested block;
- its computed attributes are the class's getters with no `<name>Input` twin (the same rule inside a
  block, on the block's `OutputReference` class).

The result has the shape of `terraform providers schema -json` for one provider, plus its version:
`python tfschema.py WHEEL OUT.json` writes it (the Makefile does, at install time).
"""

from __future__ import annotations

import bisect
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

_DOC_NAME = re.compile(
    r"/providers/hashicorp/([a-z0-9-]+)/([0-9.]+)/docs(?:/(resources|data-sources)/([a-z0-9_]+))?"
)
_ANCHOR = re.compile(r"#([a-z0-9_]+) ")
_HCL_FUNC = re.compile(
    r"function (\w+)ToHclTerraform\(|class (\w+) extends cdktf\.Terraform(?:Resource|DataSource|Provider)"
)
_HCL_ENTRY = re.compile(r"isBlock: (true|false),\s*type: \"(\w+)\",")
_HCL_KEY = re.compile(r"(\w+): \{\s*value: ")
_PRIMITIVES = {"string": "string", "number": "number", "boolean": "bool", "date": "string", "any": "dynamic"}
_MAPS = {
    "cdktf.StringMap": ["map", "string"],
    "cdktf.NumberMap": ["map", "number"],
    "cdktf.BooleanMap": ["map", "bool"],
}
_MAPS |= {"cdktf.AnyMap": ["map", "dynamic"], "cdktf.StringMapList": ["list", ["map", "string"]]}
_MAPS |= {
    "cdktf.NumberMapList": ["list", ["map", "number"]],
    "cdktf.BooleanMapList": ["list", ["map", "bool"]],
}
_MAPS |= {"cdktf.AnyMapList": ["list", ["map", "dynamic"]]}
_SKIP = {"tfResourceType", "fqn", "friendlyUniqueId", "terraformResourceType", "terraformGeneratorMetadata"}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Assembly:
    def __init__(self, jsii: dict[str, Any], js_sources: list[str]) -> None:
        self.types: dict[str, Any] = jsii["types"]
        self.hcl: dict[tuple[str, str], tuple[bool, str]] = {}  # (struct name, argument) -> (is block, kind)
        for text in js_sources:
            marks = [(m.start(), m[1] or f"{m[2]}Config") for m in _HCL_FUNC.finditer(text)]
            starts = [start for start, _ in marks]
            for entry in _HCL_ENTRY.finditer(text):
                at = bisect.bisect(starts, entry.start()) - 1
                owner = marks[at][1] if at >= 0 else None
                line = text.rfind("{\n", 0, entry.start())
                key = _HCL_KEY.search(text, text.rfind("\n", 0, line) + 1, entry.start())
                if owner and key:
                    self.hcl[(owner[0].upper() + owner[1:], key[1])] = (entry[1] == "true", entry[2])

    def _unwrap(self, t: dict[str, Any]) -> dict[str, Any]:
        if "union" in t:
            rest = [u for u in t["union"]["types"] if u.get("fqn") != "cdktf.IResolvable"]
            return self._unwrap(rest[0])
        return t

    def _struct(self, t: dict[str, Any]) -> str | None:
        """The fqn of the struct a type is, or is a collection of, if it is a struct."""
        t = self._unwrap(t)
        if "collection" in t:
            return self._struct(t["collection"]["elementtype"])
        fqn = t.get("fqn")
        return fqn if fqn in self.types and self.types[fqn].get("datatype") else None

    def cty(self, t: dict[str, Any]) -> Any:
        t = self._unwrap(t)
        if "primitive" in t:
            return _PRIMITIVES.get(t["primitive"], "string")
        if "collection" in t:
            kind = {"array": "list", "map": "map"}[t["collection"]["kind"]]
            return [kind, self.cty(t["collection"]["elementtype"])]
        fqn = t["fqn"]
        if fqn in _MAPS:
            return _MAPS[fqn]
        if fqn == "cdktf.IResolvable":  # a computed boolean's getter
            return "bool"
        cls = self.types.get(fqn, {})
        if cls.get("datatype"):
            return ["object", {_snake(p["name"]): self.cty(p["type"]) for p in cls.get("properties", [])}]
        if cls.get("base") == "cdktf.ComplexList":
            return ["list", self._computed_object(fqn[: -len("List")] + "OutputReference")]
        if cls.get("base") == "cdktf.ComplexObject":
            return ["list", self._computed_object(fqn)]
        return "string"

    def _computed_object(self, ref_fqn: str) -> Any:
        cls = self.types.get(ref_fqn, {})
        props = [
            p for p in cls.get("properties", []) if p["name"] not in _SKIP and not p["name"].endswith("Input")
        ]
        props = [p for p in props if p["name"] != "internalValue" and not p.get("static")]
        return ["object", {_snake(p["name"]): self.cty(p["type"]) for p in props}]

    @staticmethod
    def _tf_name(prop: dict[str, Any]) -> str:
        m = _ANCHOR.search(prop["docs"].get("remarks", "") + " " + prop["docs"].get("summary", ""))
        return m[1] if m else _snake(prop["name"])

    def block(self, struct_fqn: str, ref_fqn: str | None) -> dict[str, Any]:
        """The schema block of a config struct; ref_fqn is the class whose extra getters are computed."""
        struct = self.types[struct_fqn]
        attributes: dict[str, Any] = {}
        block_types: dict[str, Any] = {}
        for prop in struct.get("properties", []):
            name = self._tf_name(prop)
            is_block, kind = self.hcl.get((struct["name"], name), (None, ""))
            nested = self._struct(prop["type"])
            if nested and is_block is not False:
                single = "fqn" in self._unwrap(prop["type"])
                mode = {"struct": "single", "set": "set"}.get(kind, "list")
                spec: dict[str, Any] = {"nesting_mode": mode, "block": self.block(nested, self._ref(nested))}
                if mode != "single":
                    spec |= {"min_items": 0 if prop.get("optional") else 1, "max_items": 1 if single else 0}
                block_types[name] = spec
                continue
            cty = self.cty(prop["type"])
            if kind == "set" and isinstance(cty, list) and cty[0] == "list":
                cty = ["set", cty[1]]
            attr: dict[str, Any] = {"type": cty}
            attr |= {"optional": True} if prop.get("optional") else {"required": True}
            if name == "id" and prop.get("optional"):  # SDKv2 adds an optional, computed id to every resource
                attr["computed"] = True
            attributes[name] = attr
        if ref_fqn in self.types:
            config = {p["name"] for p in struct.get("properties", [])}
            for prop in self.types[ref_fqn].get("properties", []):
                pname = prop["name"]
                if pname in config or pname in _SKIP or pname.endswith("Input") or prop.get("static"):
                    continue
                if pname == "internalValue" or f"{pname}Input" in {
                    p["name"] for p in self.types[ref_fqn]["properties"]
                }:
                    continue
                attributes.setdefault(_snake(pname), {"type": self.cty(prop["type"]), "computed": True})
        return {"attributes": attributes, "block_types": block_types}

    def _ref(self, struct_fqn: str) -> str | None:
        ref = struct_fqn + "OutputReference"
        return ref if ref in self.types else None


def build(wheel: Path) -> dict[str, Any]:
    """The provider schema described by a cdktf-cdktf-provider-* wheel."""
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".jsii.tgz"))
        data = zf.read(member)
    jsii: dict[str, Any] = {}
    js: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for info in tf:
            if info.name == "package/.jsii":
                jsii = json.load(tf.extractfile(info))  # type: ignore[arg-type]
            elif info.name.startswith("package/lib/") and info.name.endswith("/index.js"):
                js.append(tf.extractfile(info).read().decode())  # type: ignore[union-attr]
    asm = _Assembly(jsii, js)
    out: dict[str, Any] = {"resource_schemas": {}, "data_source_schemas": {}}
    for fqn, cls in asm.types.items():
        base = cls.get("base")
        if base not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource", "cdktf.TerraformProvider"):
            continue
        m = _DOC_NAME.search(cls["docs"].get("summary", ""))
        if not m:
            continue
        provider, version, kind, doc_name = m.groups()
        block = asm.block(f"{fqn}Config", fqn if base != "cdktf.TerraformProvider" else None)
        if base == "cdktf.TerraformProvider":
            block["attributes"].pop("alias", None)
            out |= {"name": provider, "version": version, "provider": {"version": 0, "block": block}}
            continue
        section = "resource_schemas" if kind == "resources" else "data_source_schemas"
        out[section][f"{provider}_{doc_name}"] = {"version": 0, "block": block}
    return out


if __name__ == "__main__":
    schema = build(Path(sys.argv[1]))
    Path(sys.argv[2]).parent.mkdir(parents=True, exist_ok=True)
    Path(sys.argv[2]).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
    print(f"{sys.argv[2]}: {schema['name']} {schema['version']}, {len(schema['resource_schemas'])} resources")
