"""The policy rule language: operators, references, substitution, overrides, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratus.core import policy
from stratus.core.context import RequestContext
from stratus.core.errors import Forbidden
from stratus.core.policy import BASE_RULES, Enforcer, PolicyError, RuleDefault, expand_roles

MEMBER = {"user_id": "u1", "project_id": "p1", "domain_id": None, "roles": ["member"],
          "system_scope": None, "is_admin": False, "service_roles": []}


def check(rule: str, creds: dict[str, Any] | None = None, target: dict[str, Any] | None = None,
          **others: str) -> bool:
    """Evaluate `rule` (named "t") with extra named rules `others` alongside."""
    defaults = [RuleDefault("t", rule), *(RuleDefault(n, s) for n, s in others.items())]
    return Enforcer(defaults).check("t", MEMBER if creds is None else creds, target)


# --- constants and operators -------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "expected"), [
    ("@", True), ("!", False), ("", True), ("   ", True),
])
def test_constants_and_empty_rule(rule: str, expected: bool) -> None:
    assert check(rule) is expected


@pytest.mark.parametrize(("left", "right"), [("@", "@"), ("@", "!"), ("!", "@"), ("!", "!")])
def test_and_or_truth_tables(left: str, right: str) -> None:
    lv, rv = left == "@", right == "@"
    assert check(f"{left} and {right}") is (lv and rv)
    assert check(f"{left} or {right}") is (lv or rv)


def test_not_negates() -> None:
    assert check("not !") is True
    assert check("not @") is False
    assert check("not not @") is True


@pytest.mark.parametrize(("rule", "expected"), [
    ("@ or ! and !", True),      # and binds tighter: @ or (! and !)
    ("! and ! or @", True),      # (! and !) or @
    ("not ! and !", False),      # not binds tighter: (not !) and !
    ("not @ or @", True),        # (not @) or @
    ("(@ or !) and !", False),   # parentheses override
    ("not (! or @)", False),
    ("! or (! or (@ and (not !)))", True),
])
def test_precedence_not_over_and_over_or(rule: str, expected: bool) -> None:
    assert check(rule) is expected


def test_keywords_are_case_insensitive() -> None:
    assert check("@ AND NOT ! Or !") is True
    assert check("! OR Not @") is False


def test_parentheses_may_touch_checks() -> None:
    rule = "(role:admin or role:member) and (project_id:%(project_id)s)"
    assert check(rule, target={"project_id": "p1"}) is True
    assert check(rule, target={"project_id": "p2"}) is False
    assert check("((@))") is True


# --- roles -------------------------------------------------------------------------------------


def test_role_check_uses_the_credentials_roles() -> None:
    assert check("role:member") is True
    assert check("role:admin") is False
    assert check("role:member", {"roles": []}) is False
    assert check("role:member", {}) is False


def test_role_names_are_case_insensitive() -> None:
    assert check("role:ADMIN", {"roles": ["Admin"]}) is True
    assert check("Role:admin", {"roles": ["ADMIN"]}) is True


@pytest.mark.parametrize(("held", "asked", "expected"), [
    ("admin", "member", True), ("admin", "reader", True), ("member", "reader", True),
    ("reader", "member", False), ("member", "admin", False), ("service", "reader", False),
])
def test_roles_imply_lesser_roles(held: str, asked: str, expected: bool) -> None:
    assert check(f"role:{asked}", {"roles": [held]}) is expected


def test_expand_roles() -> None:
    assert expand_roles(["Admin"]) == {"admin", "member", "reader"}
    assert expand_roles(["member", "service"]) == {"member", "reader", "service"}
    assert expand_roles([]) == set()
    assert expand_roles(None) == set()


def test_role_check_does_not_read_service_roles() -> None:
    assert check("role:service", {"roles": [], "service_roles": ["service"]}) is False
    # ...but a generic check on the list does, matching any member.
    assert check("service_roles:service", {"roles": [], "service_roles": ["admin", "service"]}) is True


# --- rule references ---------------------------------------------------------------------------


def test_rule_reference_evaluates_the_named_rule() -> None:
    assert check("rule:a and rule:b", a="role:member", b="@") is True
    assert check("rule:a and rule:b", a="role:member", b="!") is False
    assert check("rule:a", a="rule:b", b="rule:c", c="role:member") is True


def test_reference_to_unregistered_rule_denies() -> None:
    assert check("rule:nobody_registered_this") is False
    assert check("not rule:nobody_registered_this") is True


def test_reference_may_precede_registration() -> None:
    enforcer = Enforcer([RuleDefault("t", "rule:later")])
    assert enforcer.check("t", MEMBER) is False
    enforcer.register([RuleDefault("later", "@")])
    assert enforcer.check("t", MEMBER) is True


@pytest.mark.parametrize("others", [
    {"a": "rule:b", "b": "rule:a"},
    {"a": "@ or rule:a"},
    {"a": "rule:b", "b": "role:x or (rule:c)", "c": "not rule:a"},
])
def test_reference_cycle_raises_at_load(others: dict[str, str]) -> None:
    with pytest.raises(PolicyError, match="loop"):
        Enforcer([RuleDefault(n, s) for n, s in others.items()])


def test_cycle_from_a_later_register_raises_and_keeps_the_old_rules() -> None:
    enforcer = Enforcer([RuleDefault("a", "rule:b")])
    with pytest.raises(PolicyError, match="a -> b -> a"):
        enforcer.register([RuleDefault("b", "rule:a"), RuleDefault("c", "@")])
    assert enforcer.check("a", MEMBER) is False
    with pytest.raises(PolicyError):
        enforcer.check("c", MEMBER)


# --- generic checks: target substitution and literals ------------------------------------------


def test_target_substitution() -> None:
    assert check("project_id:%(project_id)s", target={"project_id": "p1"}) is True
    assert check("project_id:%(project_id)s", target={"project_id": "p2"}) is False
    assert check("project_id:%(project_id)s", target={}) is False
    assert check("project_id:%(project_id)s") is False
    assert check("user_id:%(owner)s", target={"owner": "u1"}) is True


def test_missing_values_never_match_each_other() -> None:
    # A system-scoped token (no project) must not "own" a target without a project.
    creds = {**MEMBER, "project_id": None}
    assert check("project_id:%(project_id)s", creds, {"project_id": None}) is False
    assert check("project_id:%(project_id)s", {"project_id": ""}, {"project_id": ""}) is False
    assert check("project_id:%(project_id)s", {}, {}) is False


def test_dotted_target_keys_are_looked_up_flat_first() -> None:
    rule = "user_id:%(target.user.id)s"
    assert check(rule, target={"target.user.id": "u1"}) is True
    assert check(rule, target={"target.user.id": "u2"}) is False
    assert check(rule, target={"target": {"user": {"id": "u1"}}}) is True
    # The flat key wins over a nested one.
    assert check(rule, target={"target.user.id": "u2", "target": {"user": {"id": "u1"}}}) is False
    assert check(rule, target={"target": {"user": "u1"}}) is False


def test_target_values_compare_as_strings() -> None:
    assert check("level:%(level)s", {"level": "3"}, {"level": 3}) is True
    assert check("project_id:%(ids)s", target={"ids": ["p1"]}) is False


@pytest.mark.parametrize(("rule", "creds", "expected"), [
    ("system_scope:all", {"system_scope": "all"}, True),
    ("system_scope:all", {"system_scope": None}, False),
    ("system_scope:all", {}, False),
    ("is_admin:True", {"is_admin": True}, True),
    ("is_admin:True", {"is_admin": False}, False),
    ("is_admin:False", {"is_admin": False}, True),
    ("level:3", {"level": 3}, True),
    ("domain_id:default", {"domain_id": "default"}, True),
    ("note:a:b", {"note": "a:b"}, True),
])
def test_literal_checks_compare_string_forms(rule: str, creds: dict[str, Any], expected: bool) -> None:
    assert check(rule, creds) is expected


# --- base rules --------------------------------------------------------------------------------


def test_base_rules_are_always_available() -> None:
    enforcer = Enforcer()
    admin = {**MEMBER, "roles": ["admin"]}
    assert enforcer.check("reader", MEMBER) is True
    assert enforcer.check("reader", {**MEMBER, "roles": ["reader"]}) is True
    assert enforcer.check("reader", {**MEMBER, "roles": ["other"]}) is False
    assert enforcer.check("admin_required", admin) is True
    assert enforcer.check("admin_required", MEMBER) is False
    assert enforcer.check("service_role", {"roles": ["service"]}) is True
    assert enforcer.check("system_admin", admin) is False
    assert enforcer.check("system_admin", {**admin, "system_scope": "all"}) is True
    assert enforcer.check("owner", MEMBER, {"project_id": "p1"}) is True
    assert enforcer.check("owner", MEMBER, {"project_id": "p2"}) is False


def test_base_rules_accept_request_context_credentials() -> None:
    ctx = RequestContext(user_id="u1", project_id="p1", roles=["member"])
    enforcer = Enforcer([RuleDefault("compute:get", "rule:system_admin or (rule:reader and rule:owner)")])
    assert enforcer.check("compute:get", ctx.policy_credentials(), {"project_id": "p1"}) is True
    assert enforcer.check("compute:get", ctx.policy_credentials(), {"project_id": "p2"}) is False


def test_registering_the_same_default_twice_is_harmless() -> None:
    enforcer = Enforcer(BASE_RULES)
    enforcer.register(BASE_RULES)
    assert enforcer.check("reader", MEMBER) is True


def test_registering_a_name_with_a_different_rule_raises() -> None:
    enforcer = Enforcer([RuleDefault("x", "@")])
    with pytest.raises(PolicyError, match="'x' registered twice"):
        enforcer.register([RuleDefault("x", "!")])
    assert enforcer.check("x", MEMBER) is True


# --- operator policy file ----------------------------------------------------------------------


def test_policy_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"svc:list": "rule:my_admins"\n'
                    'my_admins: "role:auditor or rule:admin_required"\n'
                    'reader: "!"\n')
    enforcer = Enforcer([RuleDefault("svc:list", "rule:reader"), RuleDefault("svc:get", "rule:reader")],
                        policy_file=path)
    assert enforcer.check("svc:list", {"roles": ["auditor"]}) is True
    assert enforcer.check("svc:list", {"roles": ["admin"]}) is True
    assert enforcer.check("svc:list", MEMBER) is False
    # The override of a base rule reaches every rule that refers to it.
    assert enforcer.check("svc:get", MEMBER) is False
    assert enforcer.check("my_admins", {"roles": ["auditor"]}) is True


def test_policy_file_wins_over_a_later_register(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"svc:delete": "!"\n')
    enforcer = Enforcer(policy_file=path)
    enforcer.register([RuleDefault("svc:delete", "@")])
    assert enforcer.check("svc:delete", MEMBER) is False


def test_policy_file_may_be_json(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"svc:get": "role:reader and project_id:%(project_id)s"}))
    enforcer = Enforcer(policy_file=path)
    assert enforcer.check("svc:get", MEMBER, {"project_id": "p1"}) is True


def test_empty_policy_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("")
    assert Enforcer([RuleDefault("x", "@")], policy_file=path).check("x", MEMBER) is True


@pytest.mark.parametrize(("content", "match"), [
    ("- role:admin\n", "mapping"),
    ("x: [1, 2]\n", "'x' must be a string"),
    ("x:\n", "'x' must be a string"),
    ("x: 'unclosed\n", "not valid YAML"),
    ("x: role:admin and\n", "invalid policy rule 'x'"),
])
def test_bad_policy_file_raises_policy_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(PolicyError, match=match) as excinfo:
        Enforcer(policy_file=path)
    assert str(path) in str(excinfo.value)


def test_missing_policy_file_raises(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        Enforcer(policy_file=tmp_path / "absent.yaml")


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [
    "role:admin and", "or @", "@ @", "(role:admin", "role:admin)", "()", "not", "admin",
    "role:", ":x", "project_id:%(project_id)", "project_id:x%(project_id)s", "role:%(r)s",
    "@ and or !", "not )",
])
def test_parse_error_names_the_rule_at_load_time(rule: str) -> None:
    with pytest.raises(PolicyError, match="invalid policy rule 'svc:broken'"):
        Enforcer([RuleDefault("svc:broken", rule)])


def test_parse_error_in_register_names_the_rule() -> None:
    enforcer = Enforcer()
    with pytest.raises(PolicyError, match="'svc:bad'"):
        enforcer.register([RuleDefault("svc:ok", "@"), RuleDefault("svc:bad", "role:x or")])
    with pytest.raises(PolicyError):
        enforcer.check("svc:ok", MEMBER)   # all-or-nothing


def test_check_of_unknown_rule_raises() -> None:
    with pytest.raises(PolicyError, match="unknown policy rule 'nope'"):
        Enforcer().check("nope", MEMBER)


def test_rules_are_compiled_once_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    enforcer = Enforcer([RuleDefault("t", "rule:reader and project_id:%(project_id)s")])

    def no_parsing(*args: Any) -> None:
        raise AssertionError("parsed at check time")

    monkeypatch.setattr(policy, "_Parser", no_parsing)
    monkeypatch.setattr(policy, "_tokenize", no_parsing)
    assert enforcer.check("t", MEMBER, {"project_id": "p1"}) is True


def test_enforce_raises_forbidden_when_denied() -> None:
    enforcer = Enforcer([RuleDefault("identity:list_users", "rule:admin_required")])
    enforcer.enforce("identity:list_users", {"roles": ["admin"]})
    with pytest.raises(Forbidden) as excinfo:
        enforcer.enforce("identity:list_users", MEMBER)
    assert excinfo.value.status == 403
    assert excinfo.value.message == "Policy doesn't allow identity:list_users to be performed."


def test_enforce_of_unknown_rule_raises_policy_error() -> None:
    with pytest.raises(PolicyError):
        Enforcer().enforce("nope", MEMBER)


# --- property: the rule language agrees with Python's boolean expressions ----------------------

_leaves = st.sampled_from([["@"], ["!"]])


def _compound(children: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    return st.one_of(
        children.map(lambda e: ["not", *e]),
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(lambda t: [*t[0], t[1], *t[2]]),
        children.map(lambda e: ["(", *e, ")"]),
    )


_expressions = st.recursive(_leaves, _compound, max_leaves=16)
_PYTHON = {"@": "True", "!": "False"}


@given(tokens=_expressions, data=st.data())
def test_boolean_combinations_match_python(tokens: list[str], data: st.DataObject) -> None:
    rule = ""
    for i, token in enumerate(tokens):
        if token in ("and", "or", "not"):
            token = data.draw(st.sampled_from([token, token.upper(), token.title()]))
        # Parentheses may touch what they enclose; everything else needs a space.
        glued = i > 0 and (tokens[i - 1] == "(" or token == ")") and data.draw(st.booleans())
        rule += token if glued or i == 0 else " " + token
    expected = eval(" ".join(_PYTHON.get(t, t) for t in tokens), {"__builtins__": {}})
    assert Enforcer([RuleDefault("p", rule)]).check("p", {}) is expected
