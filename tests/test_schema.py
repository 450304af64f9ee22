"""Unit tests of the schema walker (mistral_compat/schema.py) on small hand-written rules: what each node
repairs, drops or leaves, and which rules compile_rules refuses."""

from __future__ import annotations

import pytest

from mistral_compat import jsonio, schema
from mistral_compat.changes import DROPPED, REMOVED, RENAMED, TOOL_ID, VALUE
from mistral_compat.jsonio import RawNumber
from mistral_compat.rules import compile_rules
from mistral_compat.schema import Drop
from mistral_compat.translate import Fixer

MESSAGE = {
    "union": "role",
    "map": {
        "user": {"object": {"role": {"type": "string"}, "content": {"type": "string"}}, "closed": True},
        "system": {"object": {"role": {"type": "string"}, "content": {"type": "string"}}, "closed": True},
        "assistant": {"ref": "AssistantMessage"},
        "tool": {
            "object": {"role": {"type": "string"}, "content": {"type": "string"}, "tool_call_id": {"type": "string"}},
            "closed": True,
        },
    },
}
SCHEMAS = {
    "ChatCompletionRequest": {
        "object": {
            "model": {"type": "string"},
            "temperature": {"anyof": [{"type": "number", "min": 0, "max": 1.5}, {"type": "null"}]},
            "top_p": {"type": "number", "xmin": 0, "max": 1},
            "max_tokens": {"anyof": [{"type": "integer", "min": 0}, {"type": "null"}]},
            "random_seed": {"type": "integer", "min": 0},
            "reasoning_effort": {"ref": "ReasoningEffort"},
            "stop": {"anyof": [{"type": "string"}, {"array": {"type": "string"}}]},
            "metadata": "any",
            "messages": {"array": MESSAGE},
        },
        "required": ["model", "messages"],
        "closed": True,
    },
    "AssistantMessage": {
        "object": {
            "role": {"type": "string"},
            "content": {"type": "string"},
            "tool_calls": {"array": {"object": {"id": {"type": "string"}}}},
        },
        "closed": True,
    },
    "ReasoningEffort": {"type": "string", "enum": ["low", "medium", "high", "xhigh"]},
    "OtherRequest": {"object": {"messages": {"array": MESSAGE}}, "closed": True},  # a role union, not registered
}
RULES = {
    "endpoints": {"chat/completions": {"ref": "ChatCompletionRequest"}, "other": {"ref": "OtherRequest"}},
    "schemas": SCHEMAS,
}
NODES = compile_rules(RULES)


def fix(body: dict, endpoint: str = "chat/completions", conversation: bool = True) -> tuple[dict, list]:
    fx = Fixer(conversation=conversation)
    out = NODES[endpoint].fix(body, fx, ())
    assert out is body  # objects are repaired in place
    return body, [tuple(c) for c in fx.changes]


def chat(**keys) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **keys}


def test_kind_of_is_the_jsonio_table():
    assert schema.kind_of is jsonio.kind_of


# --- scalars ----------------------------------------------------------------------------------------------


def test_numbers_out_of_range_are_clamped_and_said_so():
    body, changes = fix(chat(temperature=2, top_p=0, random_seed=-5))
    assert body["temperature"] == 1.5 and body["top_p"] == 1e-6 and body["random_seed"] == 0
    assert changes == [
        (VALUE, "temperature", "2 -> 1.5, Mistral's limit"),
        (VALUE, "top_p", "0 -> 1e-06, Mistral's limit"),
        (VALUE, "random_seed", "-5 -> 0, Mistral's limit"),
    ]


def test_below_the_minimum_means_no_limit_for_token_counts():
    body, changes = fix(chat(max_tokens=-1))
    assert "max_tokens" not in body
    assert changes == [(DROPPED, "max_tokens", "-1 is below Mistral's minimum 0; unset means no limit")]


def test_change_details_show_numbers_as_the_client_wrote_them():
    body, changes = fix(chat(temperature=RawNumber("2.00000000000000000001")))
    assert body["temperature"] == 1.5 and changes == [
        (VALUE, "temperature", "2.00000000000000000001 -> 1.5, Mistral's limit")
    ]


def test_enum_values_are_aliased_or_dropped():
    assert fix(chat(reasoning_effort="max"))[1] == [(VALUE, "reasoning_effort", "'max' -> 'xhigh'")]
    body, changes = fix(chat(reasoning_effort="extreme"))
    assert "reasoning_effort" not in body
    assert changes == [(DROPPED, "reasoning_effort", "'extreme' is not one of 'low', 'medium', 'high', 'xhigh'")]


def test_values_in_range_and_of_other_types_are_left_for_mistral():
    body = chat(temperature=0.7, top_p="x", stop=["a"], metadata={"any": [1, {"thing": None}]})
    assert fix(jsonio.copy(body)) == (body, [])


# --- objects ----------------------------------------------------------------------------------------------


def test_closed_objects_drop_unknown_keys_and_nulls_unless_required():
    body, changes = fix(
        {
            "model": None,
            "messages": [{"role": "user", "content": "hi", "name": "x"}],
            "stream_options": {},
            "max_tokens": None,
            "top_p": None,
        }
    )
    assert body == {"model": None, "messages": [{"role": "user", "content": "hi"}], "max_tokens": None}
    assert changes == [(DROPPED, "messages[0].name", ""), (DROPPED, "stream_options", ""), (DROPPED, "top_p", "null")]


def test_a_rename_gives_the_same_as_the_walks_general_case_whatever_the_value():
    """The walk renames an integer within the target's limits itself (the common case) and hands every other value
    to _rename: both give the same body, changes and key order as _rename alone."""
    import json

    values = [9, 0, -1, -2, 2**40, 9.0, 9.5, True, None, "9", [9], {"a": 9}]
    for value in values:
        for extra in ({}, {"max_tokens": 5}, {"max_tokens": None}, {"max_tokens": "x"}):
            body = chat(max_completion_tokens=value, **extra)
            fast = fix(json.loads(json.dumps(body)))
            node = NODES["chat/completions"]
            saved = dict(node.plan())
            try:  # the plan without number limits for the target: every rename goes to _rename
                node._plan["max_tokens"] = node.props["max_tokens"]
                slow = fix(json.loads(json.dumps(body)))
            finally:
                node._plan.clear()
                node._plan.update(saved)
            assert fast == slow and list(fast[0]) == list(slow[0]), (value, extra)
    assert isinstance(NODES["chat/completions"].plan()["max_tokens"], tuple)  # (so the fast case was taken above)


def test_an_array_chooses_a_union_branch_as_the_union_itself_would():
    """ArrayNode.fix picks a union item's branch by its tag itself (UnionNode.fix's common case): the same body and
    changes as UnionNode.fix for known tags, aliases (developer -> system), unknown tags and items of other
    types."""
    import json

    messages = [
        {"role": "user", "content": "hi", "name": "x"},
        {"role": "developer", "content": "be brief", "name": "y"},
        {"role": "system", "content": 3},
        {"role": "robot", "content": "?", "extra": 1},
        {"role": 7, "content": "?"},
        {"content": "no role"},
        "a string",
        None,
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "tool", "content": "42", "tool_call_id": "call_abcdefghijklmnop", "name": "f"},
    ]
    array = NODES["chat/completions"].props["messages"]
    array = getattr(array, "node", array)  # (under a conversation rule's wrapper, if any)
    assert array.union is not None
    fast = fix(chat(messages=json.loads(json.dumps(messages))))
    union, array.union = array.union, None  # every item to UnionNode.fix
    try:
        slow = fix(chat(messages=json.loads(json.dumps(messages))))
    finally:
        array.union = union
    assert fast == slow
    assert fast[0]["messages"][1] == {"role": "system", "content": "be brief"}


def test_openai_keys_are_renamed_and_mistral_keys_win():
    body, changes = fix(chat(seed=3, max_completion_tokens=9))
    assert body["random_seed"] == 3 and body["max_tokens"] == 9 and "seed" not in body
    assert changes == [(RENAMED, "seed", "random_seed"), (RENAMED, "max_completion_tokens", "max_tokens")]
    body, changes = fix(chat(seed=3, random_seed=4))
    assert body["random_seed"] == 4 and changes == [(DROPPED, "seed", "random_seed also sent")]
    body, changes = fix(chat(random_seed="x", seed=-2))  # Mistral's key of the wrong type: the renamed one, fixed
    assert body["random_seed"] == 0
    assert changes == [
        (DROPPED, "random_seed", "not valid; seed used instead"),
        (RENAMED, "seed", "random_seed"),
        (VALUE, "random_seed", "-2 -> 0, Mistral's limit"),
    ]


# --- unions, arrays and the conversation rules -------------------------------------------------------------


def test_union_aliases_and_array_items_removed():
    body, changes = fix(
        chat(
            messages=[
                {"role": "developer", "content": "be brief"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "hi"},
            ]
        )
    )
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert changes == [
        (VALUE, "messages[0].role", "'developer' -> 'system'"),
        (REMOVED, "messages[1]", "assistant message with no content and no tool calls"),
    ]


def test_an_unknown_union_shape_is_left_for_mistral():
    assert fix(chat(messages=[{"role": "narrator", "x": 1}]))[1] == []


TOOL_TURN = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "tool_calls": [{"id": "call_1"}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
]


def test_tool_call_ids_are_repaired_under_the_registered_key_only():
    body, changes = fix(chat(messages=jsonio.copy(TOOL_TURN)))
    assert [c[:2] for c in changes] == [
        (TOOL_ID, "messages[1].tool_calls[0].id"),
        (TOOL_ID, "messages[2].tool_call_id"),
    ]
    # a role union under a schema not registered in translate.AFTER_KEY: no guess, no repair
    assert fix({"messages": jsonio.copy(TOOL_TURN)}, "other")[1] == []
    # nor outside a conversation endpoint, nor in the empty assistant message's removal
    assert fix(chat(messages=jsonio.copy(TOOL_TURN)), conversation=False)[1] == []


def test_objects_deeper_than_the_limit_are_left_as_they_are():
    deep: dict = {"messages": []}
    node = deep
    for _ in range(schema.MAX_DEPTH + 5):
        node["x"] = {}
        node = node["x"]
    rules = {"endpoints": {"e": {"ref": "T"}}, "schemas": {"T": {"object": {"x": {"ref": "T"}}, "closed": True}}}
    node["unknown"] = 1
    fx = Fixer()
    compile_rules(rules)["e"].fix(deep, fx, ())
    assert node["unknown"] == 1 and [c.path for c in fx.changes] == ["messages"]


# --- compile_rules refuses rules that cannot be used -------------------------------------------------------


@pytest.mark.parametrize(
    "schemas, needle",
    [
        ({}, "missing schema 'A'"),
        ({"A": {"ref": "B"}, "B": {"ref": "A"}}, "only a \\$ref to one another form a cycle: A -> B -> A"),
        ({"A": {"union": "type", "map": {"a": {"ref": "A"}}}}, "back to itself without going deeper"),
        ({"A": {"anyof": [{"type": "string"}, {"ref": "A"}]}}, "back to itself without going deeper"),
        ({"A": {"strange": 1}}, "unknown rule"),
    ],
)
def test_unusable_rules_are_refused(schemas, needle):
    with pytest.raises(ValueError, match=needle):
        compile_rules({"endpoints": {"e": {"ref": "A"}}, "schemas": schemas})


def test_a_recursive_schema_through_an_object_is_fine():
    rules = {
        "endpoints": {"e": {"ref": "T"}},
        "schemas": {"T": {"object": {"child": {"ref": "T"}, "n": {"type": "integer", "min": 0}}}},
    }
    body = {"child": {"child": {"n": -1}}}
    fx = Fixer()
    assert not isinstance(compile_rules(rules)["e"].fix(body, fx, ()), Drop)
    assert body == {"child": {"child": {"n": 0}}} and fx.changes[0].path == "child.child.n"
