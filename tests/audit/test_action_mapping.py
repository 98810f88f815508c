"""Every action the product can record has its DICOM audit message (PS3.15 A.5.3), and every
message validates against the DICOM Audit Message Schema (PS3.15 A.5.1).

The action names are collected from the code, not listed here: the HTTP classification applied
to every route of the app `yunying serve` builds, and a walk of the source for every call that
records (yunying.audit.record, record_cli, write_now, a dict with an "action" handed to the
trail) and every function that passes its own argument on to one of those.
"""
from __future__ import annotations

import ast
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.auth.conftest import sample_path, walk
from yunying.audit import actions
from yunying.audit.export import audit_message, to_dicom_xml
from yunying.audit.middleware import classify
from yunying.audit.trail import _complete
from yunying.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("yunying", "dicomweb", "dimse", "frontends")
# the functions that record, and the position of their action argument
ROOTS = {"yunying.audit.record": 0, "yunying.audit.record_cli": 1, "yunying.audit.write_now": 2}
# a parameter whose values come from elsewhere: the middleware's `kind` is classify()'s answer,
# which the route walk below covers for every route
COVERED_BY_ROUTE_WALK = {("yunying.audit.middleware.AuditMiddleware._record", "kind")}
SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).with_name("dicom_audit_message.rng"))))


class Module:
    def __init__(self, path: Path) -> None:
        self.name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.imports: dict[str, str] = {}
        for node in ast.walk(self.tree):  # imports inside functions too (the CLI's lazy ones)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    self.imports[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    self.imports[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]

    def qualify(self, func: ast.expr) -> str | None:
        """The dotted name a call's function refers to, when it can be told from the source."""
        attrs: list[str] = []
        while isinstance(func, ast.Attribute):
            attrs.insert(0, func.attr)
            func = func.value
        if not isinstance(func, ast.Name) or func.id in ("self", "cls"):
            return None
        base = self.imports.get(func.id, f"{self.name}.{func.id}")
        return ".".join([base, *attrs])


Func = ast.FunctionDef | ast.AsyncFunctionDef
Scope = tuple[str, Func]  # (qualified name, node)


def functions(module: Module) -> Iterator[list[Scope]]:
    """Every function and method, as its scopes: itself first, then the functions enclosing it."""
    def visit(node: ast.AST, prefix: str, outer: list[Scope]) -> Iterator[list[Scope]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                scopes = [(f"{prefix}.{child.name}", child), *outer]
                yield scopes
                yield from visit(child, f"{prefix}.{child.name}", scopes)
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}.{child.name}", outer)
    yield from visit(module.tree, module.name, [])


def own_nodes(func: Func) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of the functions defined in it."""
    todo: list[ast.AST] = list(func.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))


def params_of(func: Func) -> list[str]:
    return [a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)]


class Names:
    """What an expression can evaluate to: action names, families ("users." of f"users.{op}"),
    parameters of the function (or an enclosing one) it comes from, and what could not be told."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.params: set[tuple[str, str]] = set()  # (function, parameter)
        self.unknown: list[str] = []

    def of(self, expr: ast.expr, scopes: list[Scope], pick: int | None = None) -> None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            self.names.add(expr.value)
        elif isinstance(expr, ast.JoinedStr):
            head = expr.values[0] if expr.values else None
            prefix = head.value if isinstance(head, ast.Constant) and isinstance(head.value, str) else ""
            (self.names.add(prefix) if prefix.endswith(".") else self.unknown.append(ast.unparse(expr)))
        elif isinstance(expr, ast.IfExp):
            self.of(expr.body, scopes, pick)
            self.of(expr.orelse, scopes, pick)
        elif isinstance(expr, ast.BoolOp):
            for value in expr.values:
                self.of(value, scopes, pick)
        elif isinstance(expr, ast.Tuple) and pick is not None:
            self.of(expr.elts[pick], scopes)
        elif isinstance(expr, ast.Name):
            self._name(expr.id, scopes, pick)
        else:
            self.unknown.append(ast.unparse(expr))

    def _name(self, name: str, scopes: list[Scope], pick: int | None) -> None:
        for i, (qual, func) in enumerate(scopes):  # the innermost function first, then its closures
            if name in params_of(func):
                self.params.add((qual, name))
                return
            found = False
            for node in own_nodes(func):
                if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        if isinstance(target, ast.Name) and target.id == name:
                            found = True
                            self.of(node.value, scopes[i:], pick)
                        elif isinstance(target, ast.Tuple):
                            for j, elt in enumerate(target.elts):
                                if isinstance(elt, ast.Name) and elt.id == name:
                                    found = True
                                    self.of(node.value, scopes[i:], j)
            if found:
                return
        self.unknown.append(name)


def action_argument(call: ast.Call, index: int) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == "action":
            return kw.value
    return call.args[index] if len(call.args) > index else None


def recorded_in_source() -> tuple[dict[str, set[str]], list[str]]:
    """{action name: where} of every name the source can record, and what the walk could not tell."""
    modules = [Module(p) for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    recorders = dict(ROOTS)
    found: dict[str, set[str]] = {}
    unknown: list[str] = []
    changed = True
    while changed:  # until no new function is found passing its argument on to a recorder
        changed = False
        found, unknown = {}, []
        for m in modules:
            for scopes in functions(m):
                qual, func = scopes[0]
                sites: list[tuple[ast.expr, str]] = []
                for node in own_nodes(func):
                    if isinstance(node, ast.Call) and (callee := m.qualify(node.func)) in recorders:
                        if (arg := action_argument(node, recorders[callee])) is not None:
                            sites.append((arg, f"{qual}:{node.lineno}"))
                    elif isinstance(node, ast.Dict):  # an entry handed to the trail
                        for k, v in zip(node.keys, node.values, strict=True):
                            if isinstance(k, ast.Constant) and k.value == "action" and \
                                    isinstance(v, ast.Constant | ast.Name | ast.JoinedStr | ast.IfExp):
                                sites.append((v, f"{qual}:{node.lineno}"))
                for arg, where in sites:
                    names = Names()
                    names.of(arg, scopes)
                    for name in names.names:
                        found.setdefault(name, set()).add(where)
                    unknown += [f"{where}: {u}" for u in names.unknown]
                    for owner, param in names.params:
                        if (owner, param) in COVERED_BY_ROUTE_WALK or owner in ROOTS:
                            continue
                        owner_func = next(f for q, f in scopes if q == owner)
                        args = [a.arg for a in (*owner_func.args.posonlyargs, *owner_func.args.args)]
                        if param not in args:
                            unknown.append(f"{where}: keyword-only {param}")
                            continue
                        index = args.index(param) - (1 if args[:1] in (["self"], ["cls"]) else 0)
                        if recorders.get(owner) != index:
                            recorders[owner] = index
                            changed = True
    return found, unknown


def recorded_over_http(tmp_path: Path) -> set[str]:
    """classify() of every route of the app `yunying serve` builds, for every method it takes."""
    from dicomweb.app import build_app
    from frontends.static import mount_frontends
    from yunying.archive import Archive

    archive = Archive(tmp_path / "data")
    try:
        app = build_app(archive, Settings(data=tmp_path / "data"))
        mount_frontends(app)
        routes = set(walk(list(app.routes)))
    finally:
        archive.close()
    return {kind[0] for method, template in routes if (kind := classify(method, sample_path(template)))}


@pytest.fixture(scope="module")
def every_action(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    found, unknown = recorded_in_source()
    assert not unknown, f"action names the walk cannot tell (make them literal or a parameter): {unknown}"
    for name in recorded_over_http(tmp_path_factory.mktemp("routes")):
        found.setdefault(name, set()).add("HTTP classification")
    return found


def test_the_walk_finds_the_actions_of_every_face(every_action: dict[str, set[str]]) -> None:
    """The walk itself is checked: it must see names recorded in each of the ways the code does."""
    for name in ("query", "frames", "store", "login", "lockout", "security.policy", "totp.enroll",
                 "audit.purge", "audit.verify", "users.", "records.read", "patient.merge", "pii.rotate", "refused"):
        assert name in every_action, name
    assert any(w.startswith("dimse.server") for w in every_action["retrieve"])  # through audited_query


def test_every_recorded_action_has_a_dicom_audit_message(every_action: dict[str, set[str]]) -> None:
    missing = {name: sorted(where) for name, where in every_action.items() if name not in actions.ACTIONS}
    assert not missing, f"actions without a DICOM mapping in yunying/audit/actions.py: {missing}"
    unused = set(actions.ACTIONS) - set(every_action)
    assert not unused, f"mapped actions nothing records any more: {unused}"


def record(action: str, **fields: object) -> dict[str, object]:
    return {**_complete({"action": action, "principal_kind": "user", "principal_id": "dr.li",
                         "client": "10.0.0.7", **fields}), "seq": 1, "hash": "0" * 64}


def test_every_action_validates_against_the_dicom_schema(every_action: dict[str, set[str]]) -> None:
    for name in every_action:
        action = name + "add" if name.endswith(".") else name
        for outcome in ("success", "refused", "failure"):
            xml = audit_message(record(action, outcome=outcome, status="403", patient_id="P1", issuer="H1",
                                       studies="1.2.3 1.2.4", accession="A<1>", detail={"path": "/x", "query": "a=1"}))
            doc = etree.fromstring(xml.encode())
            assert SCHEMA.validate(doc), (action, SCHEMA.error_log.last_error, xml)
            event = actions.event_of(action)
            assert doc.find("EventIdentification/EventID").get("csd-code") == event.event.code
            assert doc.find("EventIdentification").get("EventActionCode") == event.verb


def test_messages_carry_who_whose_and_what() -> None:
    # a DIMSE query: the AE title as AlternativeUserID, the query keys in base64 (A.5.3.10)
    dimse = record("query", face="dimse", client="MODALITY1@10.0.0.9", patient_id="P1",
                   detail={"level": "STUDY"})
    doc = etree.fromstring(audit_message(dimse).encode())
    who = doc.find("ActiveParticipant")
    assert (who.get("AlternativeUserID"), who.get("NetworkAccessPointID")) == ("AETITLES=MODALITY1", "10.0.0.9")
    query = [p for p in doc.findall("ParticipantObjectIdentification") if p.get("ParticipantObjectTypeCodeRole") == "24"]
    assert query[0].get("ParticipantObjectID") == "1.2.840.10008.5.1.4.1.2.2.1"
    assert base64.b64decode(query[0].findtext("ParticipantObjectQuery") or "") == b'{"level":"STUDY"}'
    # a user name typed with control characters still gives a valid export
    odd = record("login", outcome="failure", principal_id="evil\x01\x02name")
    xml = to_dicom_xml([odd, record("lockout", outcome="refused")])
    whole = etree.fromstring(xml)
    assert len(whole) == 2 and SCHEMA.validate(whole), SCHEMA.error_log.last_error
    kinds = [m.find("EventIdentification/EventTypeCode").get("originalText") for m in whole]
    assert kinds == ["Login", "Node Authentication"]
    assert whole[0].find("EventIdentification").get("EventOutcomeIndicator") == "8"
    assert whole[1].find("EventIdentification").get("EventOutcomeIndicator") == "4"


def test_an_unmapped_action_is_exported_as_a_security_alert() -> None:
    doc = etree.fromstring(audit_message(record("something.new")).encode())
    assert SCHEMA.validate(doc)
    assert doc.find("EventIdentification/EventID").get("csd-code") == "110113"
