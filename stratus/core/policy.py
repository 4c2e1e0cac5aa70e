"""Policy: a small rule language deciding who may call which API.

Each service registers its defaults (`RuleDefault`) next to its API; an operator's YAML or JSON
file overrides any of them by name. Every rule is compiled once, at load time, into a tree of
small check objects, so a check on the request path is a few lookups and never a parse.

Grammar (keywords are case-insensitive; `not` binds tighter than `and`, `and` tighter than `or`)::

    expr     := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | "(" expr ")" | check
    check    := "@" | "!" | "role:NAME" | "rule:NAME" | "KEY:%(ATTR)s" | "KEY:literal"

An empty rule allows everyone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stratus.core.errors import Forbidden


class PolicyError(Exception):
    """A rule that cannot be loaded or looked up: a bug in the defaults or in the operator's file."""


@dataclass(frozen=True)
class RuleDefault:
    name: str
    check_str: str
    description: str = ""


BASE_RULES: tuple[RuleDefault, ...] = (
    RuleDefault("admin_required", "role:admin", "Holds the admin role."),
    RuleDefault("service_role", "role:service", "Holds the service role (other Stratus services)."),
    RuleDefault("reader", "role:reader or role:member or role:admin", "Can read in its scope."),
    RuleDefault("system_admin", "role:admin and system_scope:all", "Administers the whole cloud."),
    RuleDefault("owner", "project_id:%(project_id)s", "The target belongs to the token's project."),
)

# A role grants the roles listed for it, so `role:reader` also passes for a member or an admin.
_IMPLIED_ROLES: dict[str, tuple[str, ...]] = {"admin": ("member", "reader"), "member": ("reader",)}


def expand_roles(roles: Iterable[str] | None) -> set[str]:
    """Lower-cased role names plus every role they imply (admin ⊇ member ⊇ reader)."""
    names = {role.lower() for role in roles or ()}
    for role in list(names):
        names.update(_IMPLIED_ROLES.get(role, ()))
    return names


# --- evaluation -------------------------------------------------------------------------------


class _Context:
    """What one `check` call sees; shared by nested `rule:` references so roles expand once."""

    __slots__ = ("creds", "target", "rules", "_roles")

    def __init__(self, creds: Mapping[str, Any], target: Mapping[str, Any],
                 rules: Mapping[str, _Check]) -> None:
        self.creds, self.target, self.rules = creds, target, rules
        self._roles: set[str] | None = None

    @property
    def roles(self) -> set[str]:
        # Lazy: most rules that never ask about roles (`@`, `owner`) skip the expansion.
        if self._roles is None:
            self._roles = expand_roles(self.creds.get("roles"))
        return self._roles


def _lookup(data: Mapping[str, Any], key: str, parts: tuple[str, ...]) -> Any:
    """`data[key]` if present, else walk a dotted key through nested mappings (`target.user.id`)."""
    if key in data:
        return data[key]
    if not parts:
        return None
    value: Any = data
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str | None:
    """String form for comparing (`True` -> 'True'); None and "" are 'no value' and match nothing,
    so an unscoped token never 'owns' a resource whose project is unset."""
    if value is None or value == "" or isinstance(value, Mapping | list | tuple | set | frozenset):
        return None
    return str(value)


def _matches(cred: Any, expected: str) -> bool:
    # A list credential (`service_roles`) matches when any of its members does.
    if isinstance(cred, list | tuple | set | frozenset):
        return any(_text(item) == expected for item in cred)
    return _text(cred) == expected


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(key.split(".")) if "." in key else ()


class _Check:
    __slots__ = ()

    def __call__(self, ctx: _Context) -> bool:
        raise NotImplementedError

    def refs(self) -> Iterator[str]:
        """Names of the rules this check refers to (for cycle detection)."""
        return iter(())


class _Const(_Check):
    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __call__(self, ctx: _Context) -> bool:
        return self.value

    def __repr__(self) -> str:
        return "@" if self.value else "!"


_ALLOW, _DENY = _Const(True), _Const(False)


class _Not(_Check):
    __slots__ = ("child",)

    def __init__(self, child: _Check) -> None:
        self.child = child

    def __call__(self, ctx: _Context) -> bool:
        return not self.child(ctx)

    def refs(self) -> Iterator[str]:
        return self.child.refs()

    def __repr__(self) -> str:
        return f"not {self.child!r}"


class _Group(_Check):
    __slots__ = ("children",)

    def __init__(self, children: tuple[_Check, ...]) -> None:
        self.children = children

    def refs(self) -> Iterator[str]:
        for child in self.children:
            yield from child.refs()


class _And(_Group):
    __slots__ = ()

    def __call__(self, ctx: _Context) -> bool:
        for child in self.children:
            if not child(ctx):
                return False
        return True

    def __repr__(self) -> str:
        return "(" + " and ".join(map(repr, self.children)) + ")"


class _Or(_Group):
    __slots__ = ()

    def __call__(self, ctx: _Context) -> bool:
        for child in self.children:
            if child(ctx):
                return True
        return False

    def __repr__(self) -> str:
        return "(" + " or ".join(map(repr, self.children)) + ")"


class _Role(_Check):
    __slots__ = ("role",)

    def __init__(self, role: str) -> None:
        self.role = role.lower()

    def __call__(self, ctx: _Context) -> bool:
        return self.role in ctx.roles

    def __repr__(self) -> str:
        return f"role:{self.role}"


class _Rule(_Check):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, ctx: _Context) -> bool:
        # Resolved per call so an operator override or a later `register` is seen. A reference to
        # a rule nobody registered denies: safe, and it may legitimately come from another service.
        rule = ctx.rules.get(self.name)
        return rule is not None and rule(ctx)

    def refs(self) -> Iterator[str]:
        yield self.name

    def __repr__(self) -> str:
        return f"rule:{self.name}"


class _Literal(_Check):
    """`KEY:literal`: the credential's value, as a string, equals the literal."""

    __slots__ = ("key", "parts", "literal")

    def __init__(self, key: str, literal: str) -> None:
        self.key, self.parts, self.literal = key, _dotted(key), literal

    def __call__(self, ctx: _Context) -> bool:
        return _matches(_lookup(ctx.creds, self.key, self.parts), self.literal)

    def __repr__(self) -> str:
        return f"{self.key}:{self.literal}"


class _Attr(_Check):
    """`KEY:%(ATTR)s`: the credential's value equals the target's attribute."""

    __slots__ = ("key", "parts", "attr", "attr_parts")

    def __init__(self, key: str, attr: str) -> None:
        self.key, self.parts = key, _dotted(key)
        self.attr, self.attr_parts = attr, _dotted(attr)

    def __call__(self, ctx: _Context) -> bool:
        expected = _text(_lookup(ctx.target, self.attr, self.attr_parts))
        return expected is not None and _matches(_lookup(ctx.creds, self.key, self.parts), expected)

    def __repr__(self) -> str:
        return f"{self.key}:%({self.attr})s"


# --- parsing ----------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not"})
_SUBSTITUTION = re.compile(r"%\(([^()\s]+)\)s")


def _tokenize(check_str: str) -> list[str]:
    """Split into '(', ')', keywords (lower-cased) and checks.

    Parentheses may touch a check (`(role:a`, `role:b)`), but a check may itself hold a balanced
    pair (`%(project_id)s`), so only the unbalanced closing ones are peeled off the end.
    """
    tokens: list[str] = []
    for chunk in check_str.split():
        while chunk.startswith("("):
            tokens.append("(")
            chunk = chunk[1:]
        closing = 0
        while chunk.endswith(")") and chunk.count(")") > chunk.count("("):
            chunk = chunk[:-1]
            closing += 1
        if chunk:
            tokens.append(chunk.lower() if chunk.lower() in _KEYWORDS else chunk)
        tokens.extend(")" * closing)
    return tokens


class _Parser:
    """Recursive descent over the tokens of one rule; every error names that rule."""

    def __init__(self, name: str, check_str: str) -> None:
        self.name, self.check_str = name, check_str
        self.tokens = _tokenize(check_str)
        self.pos = 0

    def parse(self) -> _Check:
        if not self.tokens:
            return _ALLOW
        tree = self._or()
        if self.pos < len(self.tokens):
            raise self._error(f"unexpected {self.tokens[self.pos]!r}")
        return tree

    def _error(self, reason: str) -> PolicyError:
        return PolicyError(f"invalid policy rule {self.name!r}: {reason} in {self.check_str!r}")

    def _next(self) -> str | None:
        token = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        self.pos += 1
        return token

    def _at(self, keyword: str) -> bool:
        if self.pos < len(self.tokens) and self.tokens[self.pos] == keyword:
            self.pos += 1
            return True
        return False

    def _or(self) -> _Check:
        children = [self._and()]
        while self._at("or"):
            children.append(self._and())
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def _and(self) -> _Check:
        children = [self._not()]
        while self._at("and"):
            children.append(self._not())
        return children[0] if len(children) == 1 else _And(tuple(children))

    def _not(self) -> _Check:
        token = self._next()
        if token is None:
            raise self._error("unexpected end of rule")
        if token == "not":
            return _Not(self._not())
        if token == "(":
            tree = self._or()
            if self._next() != ")":
                raise self._error("missing ')'")
            return tree
        if token in (")", "and", "or"):
            raise self._error(f"unexpected {token!r}")
        return self._check(token)

    def _check(self, token: str) -> _Check:
        if token == "@":
            return _ALLOW
        if token == "!":
            return _DENY
        kind, colon, value = token.partition(":")
        if not colon or not kind or not value:
            raise self._error(f"{token!r} is not a check (expected @, !, or KIND:VALUE)")
        substitution = _SUBSTITUTION.fullmatch(value)
        if "%(" in value and (substitution is None or kind.lower() in ("role", "rule")):
            raise self._error(f"bad substitution in {token!r} (expected KEY:%(attribute)s)")
        if kind.lower() == "role":
            return _Role(value)
        if kind.lower() == "rule":
            return _Rule(value)
        if substitution is not None:
            return _Attr(kind, substitution.group(1))
        return _Literal(kind, value)


def compile_rule(name: str, check_str: str) -> _Check:
    """Compile one rule string; raises PolicyError naming `name` if it does not parse."""
    return _Parser(name, check_str).parse()


def _find_cycle(rules: Mapping[str, _Check]) -> list[str] | None:
    """A `rule:` reference loop (as a path a -> ... -> a), or None; it would recurse forever."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name):] + [name]
        if name in done or name not in rules:
            return None
        path.append(name)
        for ref in rules[name].refs():
            cycle = visit(ref, path)
            if cycle:
                return cycle
        path.pop()
        done.add(name)
        return None

    for name in rules:
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None


def _read_policy_file(path: Path) -> dict[str, str]:
    """The operator's overrides: a YAML (or JSON, a subset of YAML) mapping name -> rule string."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML or JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must be a mapping of rule names to rule strings")
    for name, check_str in data.items():
        # No null-means-allow: a forgotten value must not silently open an API.
        if not isinstance(name, str) or not isinstance(check_str, str):
            raise PolicyError(f"policy file {path}: rule {name!r} must be a string (got {check_str!r})")
    return data


# --- the enforcer -----------------------------------------------------------------------------


class Enforcer:
    """Holds the compiled rules: defaults (BASE_RULES always included) overlaid by the operator's."""

    def __init__(self, defaults: Iterable[RuleDefault] = (), policy_file: Path | str | None = None) -> None:
        self._defaults: dict[str, RuleDefault] = {}
        self._default_rules: dict[str, _Check] = {}
        self._override_rules: dict[str, _Check] = {}
        if policy_file is not None:
            path = Path(policy_file)
            for name, check_str in _read_policy_file(path).items():
                try:
                    self._override_rules[name] = compile_rule(name, check_str)
                except PolicyError as exc:
                    raise PolicyError(f"{path}: {exc}") from None
        self._rules: dict[str, _Check] = {}
        self.register((*BASE_RULES, *defaults))

    def register(self, defaults: Iterable[RuleDefault]) -> None:
        """Add defaults; the operator's file still wins. All-or-nothing: on error nothing changes."""
        known = dict(self._defaults)
        compiled = dict(self._default_rules)
        for default in defaults:
            previous = known.get(default.name)
            if previous is not None:
                # Registering the same rule again (an app built twice) is harmless; two meanings is a bug.
                if previous.check_str != default.check_str:
                    raise PolicyError(f"policy rule {default.name!r} registered twice with different rules: "
                                      f"{previous.check_str!r} and {default.check_str!r}")
                continue
            compiled[default.name] = compile_rule(default.name, default.check_str)
            known[default.name] = default
        rules = {**compiled, **self._override_rules}
        cycle = _find_cycle(rules)
        if cycle:
            raise PolicyError(f"policy rules refer to each other in a loop: {' -> '.join(cycle)}")
        # Swap whole dicts so a concurrent check sees either the old rules or the new ones.
        self._defaults, self._default_rules, self._rules = known, compiled, rules

    def check(self, name: str, credentials: Mapping[str, Any],
              target: Mapping[str, Any] | None = None) -> bool:
        rules = self._rules
        rule = rules.get(name)
        if rule is None:
            raise PolicyError(f"unknown policy rule {name!r}")
        return rule(_Context(credentials, target or {}, rules))

    def enforce(self, name: str, credentials: Mapping[str, Any],
                target: Mapping[str, Any] | None = None) -> None:
        if not self.check(name, credentials, target):
            raise Forbidden(f"Policy doesn't allow {name} to be performed.")
