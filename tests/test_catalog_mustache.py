"""Mustache as prompts use it: the spec's interpolation, sections, inverted sections, partials,
comments and delimiters, without HTML escaping, and missing variables reported rather than guessed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wayport.catalog.errors import InvalidInput, MissingVariables
from wayport.catalog.mustache import check_syntax, json_string, partial_names, render

# (name, template, data, partials, expected) from the spec's core modules, with the HTML-escaping
# cases expecting the raw value, since prompts are not HTML
SPEC: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
    # interpolation
    ("no interpolation", "Hello from {Mustache}!\n", {}, {}, "Hello from {Mustache}!\n"),
    ("basic", "Hello, {{subject}}!\n", {"subject": "world"}, {}, "Hello, world!\n"),
    (
        "no html escaping",
        "These characters should not be HTML escaped: {{forbidden}}\n",
        {"forbidden": '& " < >'},
        {},
        'These characters should not be HTML escaped: & " < >\n',
    ),
    ("triple mustache", "{{{forbidden}}}", {"forbidden": '& " < >'}, {}, '& " < >'),
    ("ampersand", "{{&forbidden}}", {"forbidden": '& " < >'}, {}, '& " < >'),
    ("integer", '"{{mph}} miles an hour!"', {"mph": 85}, {}, '"85 miles an hour!"'),
    ("decimal", '"{{power}} jiggawatts!"', {"power": 1.21}, {}, '"1.21 jiggawatts!"'),
    ("null", "I ({{cannot}}) be seen!", {"cannot": None}, {}, "I () be seen!"),
    (
        "dotted names",
        '"{{person.name}}" == "{{#person}}{{name}}{{/person}}"',
        {"person": {"name": "Joe"}},
        {},
        '"Joe" == "Joe"',
    ),
    (
        "dotted names, arbitrary depth",
        "{{a.b.c.d.e.name}}",
        {"a": {"b": {"c": {"d": {"e": {"name": "Phil"}}}}}},
        {},
        "Phil",
    ),
    (
        "dotted names, context precedence",
        "{{#a}}{{b.c}}{{/a}}",
        {"a": {"b": {}}, "b": {"c": "ERROR"}},
        {},
        "",
    ),
    ("surrounding whitespace", "| {{string}} |", {"string": "---"}, {}, "| --- |"),
    ("standalone", "  {{string}}\n", {"string": "---"}, {}, "  ---\n"),
    ("padding", "|{{ string }}|", {"string": "---"}, {}, "|---|"),
    # sections
    (
        "truthy",
        '"{{#boolean}}This should be rendered.{{/boolean}}"',
        {"boolean": True},
        {},
        '"This should be rendered."',
    ),
    ("falsey", '"{{#boolean}}This should not be rendered.{{/boolean}}"', {"boolean": False}, {}, '""'),
    ("null is falsey", '"{{#null}}This should not be rendered.{{/null}}"', {"null": None}, {}, '""'),
    ("context", '"{{#context}}Hi {{name}}.{{/context}}"', {"context": {"name": "Joe"}}, {}, '"Hi Joe."'),
    (
        "parent contexts",
        '"{{#sec}}{{a}}, {{b}}, {{c.d}}{{/sec}}"',
        {"a": "foo", "b": "wrong", "sec": {"b": "bar"}, "c": {"d": "baz"}},
        {},
        '"foo, bar, baz"',
    ),
    ("list", '"{{#list}}{{item}}{{/list}}"', {"list": [{"item": 1}, {"item": 2}, {"item": 3}]}, {}, '"123"'),
    ("empty list", '"{{#list}}Yay lists!{{/list}}"', {"list": []}, {}, '""'),
    (
        "implicit iterator, strings",
        '"{{#list}}({{.}}){{/list}}"',
        {"list": ["a", "b", "c", "d", "e"]},
        {},
        '"(a)(b)(c)(d)(e)"',
    ),
    ("implicit iterator, integers", '"{{#list}}({{.}}){{/list}}"', {"list": [1, 2, 3]}, {}, '"(1)(2)(3)"'),
    ("implicit iterator, decimals", '"{{#list}}({{.}}){{/list}}"', {"list": [1.1, 2.2]}, {}, '"(1.1)(2.2)"'),
    (
        "nested truthy",
        "| A {{#bool}}B {{#bool}}C{{/bool}} D{{/bool}} E |",
        {"bool": True},
        {},
        "| A B C D E |",
    ),
    (
        "deeply nested contexts",
        "{{#a}}{{one}}{{#b}}{{one}}{{two}}{{one}}{{/b}}{{/a}}",
        {"a": {"one": 1}, "b": {"two": 2}},
        {},
        "1121",
    ),
    (
        "standalone lines",
        "| This Is\n{{#boolean}}\n|\n{{/boolean}}\n| A Line\n",
        {"boolean": True},
        {},
        "| This Is\n|\n| A Line\n",
    ),
    (
        "dotted names, truthy",
        '"{{#a.b.c}}Here{{/a.b.c}}" == "Here"',
        {"a": {"b": {"c": True}}},
        {},
        '"Here" == "Here"',
    ),
    # inverted sections
    (
        "inverted falsey",
        '"{{^boolean}}This should be rendered.{{/boolean}}"',
        {"boolean": False},
        {},
        '"This should be rendered."',
    ),
    (
        "inverted truthy",
        '"{{^boolean}}This should not be rendered.{{/boolean}}"',
        {"boolean": True},
        {},
        '""',
    ),
    ("inverted empty list", '"{{^list}}Yay lists!{{/list}}"', {"list": []}, {}, '"Yay lists!"'),
    ("inverted missing", "[{{^missing}}Found key 'missing'!{{/missing}}]", {}, {}, "[Found key 'missing'!]"),
    ("inverted and section", "{{#bool}}T{{/bool}}{{^bool}}F{{/bool}}", {"bool": False}, {}, "F"),
    # comments
    ("inline comment", "12345{{! Comment Block! }}67890", {}, {}, "1234567890"),
    (
        "multiline comment",
        "12345{{!\n  This is a\n  multi-line comment...\n}}67890\n",
        {},
        {},
        "1234567890\n",
    ),
    ("standalone comment", "Begin.\n{{! Comment Block! }}\nEnd.\n", {}, {}, "Begin.\nEnd.\n"),
    # partials
    ("partial", '"{{>text}}"', {}, {"text": "from partial"}, '"from partial"'),
    ("partial context", '"{{>partial}}"', {"text": "content"}, {"partial": "*{{text}}*"}, '"*content*"'),
    (
        "recursive partial",
        "{{>node}}",
        {"content": "X", "nodes": [{"content": "Y", "nodes": []}]},
        {"node": "{{content}}<{{#nodes}}{{>node}}{{/nodes}}>"},
        "X<Y<>>",
    ),
    (
        "standalone partial indentation",
        "\\\n {{>partial}}\n/\n",
        {"content": "<\n->"},
        {"partial": "|\n{{{content}}}\n|\n"},
        "\\\n |\n <\n->\n |\n/\n",
    ),
    # delimiters
    ("set delimiters", "{{=<% %>=}}(<%text%>)", {"text": "Hey!"}, {}, "(Hey!)"),
    (
        "delimiters in sections",
        "[\n{{#section}}\n  {{data}}\n  |data|\n{{/section}}\n\n{{= | | =}}\n"
        "|#section|\n  {{data}}\n  |data|\n|/section|\n]\n",
        {"section": True, "data": "I got interpolated."},
        {},
        "[\n  I got interpolated.\n  |data|\n\n  {{data}}\n  I got interpolated.\n]\n",
    ),
]


@pytest.mark.parametrize(
    ("template", "data", "partials", "expected"), [case[1:] for case in SPEC], ids=[case[0] for case in SPEC]
)
def test_the_mustache_spec_without_html_escaping(
    template: str, data: dict[str, Any], partials: dict[str, str], expected: str
) -> None:
    assert render(template, data, partials, missing="empty") == expected


def test_missing_variables_are_an_error_listing_every_one() -> None:
    with pytest.raises(MissingVariables) as caught:
        render("{{greeting}}, {{name}}! {{greeting}} {{#items}}{{label}}{{/items}}", {"items": [{}, {}]})
    assert caught.value.names == ["greeting", "name", "label"]
    assert caught.value.status == 400
    assert "greeting, name, label" in caught.value.message


def test_a_missing_section_is_false_not_an_error() -> None:
    template = "Hi{{#vip}} {{title}}{{/vip}}{{^vip}} there{{/vip}}"
    assert render(template, {}) == "Hi there"
    assert render(template, {"vip": {"title": "boss"}}) == "Hi boss"


def test_empty_mode_renders_missing_variables_and_partials_empty() -> None:
    assert render("[{{a}}|{{b.c}}|{{>nope}}]", {}, missing="empty") == "[||]"


def test_a_missing_partial_is_an_error_naming_it() -> None:
    with pytest.raises(MissingVariables) as caught:
        render("{{>intro}} {{>outro}}", {})
    assert caught.value.names == ["intro", "outro"]
    assert "partials" in caught.value.message


def test_values_render_as_json_does() -> None:
    data = {"yes": True, "no": False, "whole": 3.0, "nothing": None, "object": {"a": [1, 2]}, "list": ["x"]}
    assert render("{{yes}} {{no}} {{whole}} [{{nothing}}] {{object}}", data) == 'true false 3 [] {"a":[1,2]}'


def test_partials_nested_past_the_limit_fail_instead_of_recursing_forever() -> None:
    with pytest.raises(InvalidInput):
        render("{{>loop}}", {}, {"loop": "again {{>loop}}"})


def test_partial_names_are_found_in_sections_and_inverted_sections() -> None:
    template = "{{>a}}{{#s}}{{>b}}{{#t}}{{>c}}{{/t}}{{/s}}{{^u}}{{>d@2}}{{/u}}{{! {{>not-me}} }}"
    assert partial_names(template) == {"a", "b", "c", "d@2"}


def test_unbalanced_sections_are_a_syntax_error() -> None:
    for bad in ("{{#a}}open", "close{{/a}}", "{{#a}}x{{/b}}"):
        with pytest.raises(InvalidInput):
            check_syntax(bad)
    check_syntax("{{#a}}{{b}}{{/a}} {{! ok }}")


def test_json_string_escaping_keeps_a_raw_json_template_valid() -> None:
    template = '{"role": "user", "content": "{{text}}"}'
    text = 'He said "hi"\n\tand left \\ {"not": "json"} \u2028'
    assert orjson.loads(render(template, {"text": text}, escape=json_string))["content"] == text


@given(st.text())
def test_any_text_stays_one_json_string(text: str) -> None:
    assert orjson.loads(render('["{{value}}"]', {"value": text}, escape=json_string)) == [text]
